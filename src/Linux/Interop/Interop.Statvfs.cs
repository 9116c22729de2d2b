using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>What statvfs(3) says of a file system, in fragments of <see cref="Frsize"/> bytes.</summary>
internal readonly record struct FsStats(ulong Frsize, ulong Blocks, ulong Bfree, ulong Bavail);

internal static unsafe partial class Sys
{
    public static FsStats Statvfs(string path)
    {
        statvfs buf;
        fixed (byte* p = Utf8z(path, "statvfs"))
            ThrowIfError(LibC.statvfs(p, &buf), "statvfs", path);
        return new FsStats(buf.f_frsize, buf.f_blocks, buf.f_bfree, buf.f_bavail);
    }
}
