using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "mknod", SetLastError = true)]
    private static partial int MknodRaw(byte* path, uint mode, ulong dev); // Tmds.LibC has no mknod

    private const uint S_IFCHR = 0x2000;

    /// <summary>mknod(2) of the character device 0/0 at <paramref name="path"/>: overlayfs's whiteout (the file is deleted
    /// in this layer).</summary>
    public static void MknodWhiteout(string path)
    {
        fixed (byte* p = Utf8z(path, "mknod"))
            ThrowIfError(MknodRaw(p, S_IFCHR, 0), "mknod", path);
    }
}
