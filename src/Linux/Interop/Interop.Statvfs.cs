using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

/// <summary>struct statvfs of glibc on 64-bit Linux (x86_64, aarch64): eleven unsigned longs and six spare ints.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct StatvfsBuf
{
    public ulong Bsize;
    public ulong Frsize;
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public ulong Favail;
    public ulong Fsid;
    public ulong Flag;
    public ulong Namemax;
    public unsafe fixed int Spare[6];
}

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "statvfs", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatvfsRaw(string path, StatvfsBuf* buf);

    public static StatvfsBuf Statvfs(string path)
    {
        StatvfsBuf buf;
        ThrowIfError(StatvfsRaw(path, &buf), "statvfs", path);
        return buf;
    }
}
