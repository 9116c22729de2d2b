using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static partial int StatxRaw(int dirfd, byte* path, int flags, uint mask, byte* buffer); // not in Tmds.LibC

    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_TYPE = 0x1, STATX_MODE = 0x2, STATX_UID = 0x8, STATX_GID = 0x10;

    /// <summary>statx(2) of <paramref name="path"/> itself (a symlink is not followed): its owner and its mode (type and
    /// permission bits), or null when it does not exist. struct statx's layout is the same on every architecture.</summary>
    public static (uint Uid, uint Gid, uint Mode)? LstatOwner(string path)
    {
        var buffer = stackalloc byte[256];
        int r;
        fixed (byte* p = Utf8z(path, "statx"))
            r = StatxRaw(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, buffer);
        if (r < 0)
        {
            if (Errno is 2 or 20) return null;   // ENOENT, ENOTDIR
            throw LastError("statx", path);
        }
        return (*(uint*)(buffer + 20), *(uint*)(buffer + 24), *(ushort*)(buffer + 28));
    }

    public const uint S_IFMT = 0xF000, S_IFDIR = 0x4000;
}
