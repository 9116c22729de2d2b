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

    private const int AT_NO_AUTOMOUNT = 0x800;
    private const ulong STATX_ATTR_MOUNT_ROOT = 0x2000;

    /// <summary>Whether <paramref name="path"/> itself (a symlink is not followed, nothing automounted) is the root of a
    /// mount (STATX_ATTR_MOUNT_ROOT, Linux 5.8): false when it does not exist; null when the kernel does not say.</summary>
    public static bool? IsMountRoot(string path)
    {
        var buffer = stackalloc byte[256];
        int r;
        fixed (byte* p = Utf8z(path, "statx"))
            r = StatxRaw(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, buffer);
        if (r < 0)
        {
            if (Errno is 2 or 20) return false;   // ENOENT, ENOTDIR
            throw LastError("statx", path);
        }
        var attributes = *(ulong*)(buffer + 8);
        var supported = *(ulong*)(buffer + 56);
        return (supported & STATX_ATTR_MOUNT_ROOT) == 0 ? null : (attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    }

    private const uint STATX_MTIME = 0x40, STATX_CTIME = 0x80, STATX_INO = 0x100, STATX_SIZE = 0x200;

    /// <summary>What names one version of the file at <paramref name="path"/> (symlinks followed): its device, inode, size,
    /// modification and change times (ns). A file replaced (renamed over) or rewritten in place gets another identity, except
    /// a rewrite within the timestamps' granularity, which the caller has to allow for (<see cref="FileIdentity.ChangedAt"/>).</summary>
    public static FileIdentity Identity(string path)
    {
        var buffer = stackalloc byte[256];
        int r;
        fixed (byte* p = Utf8z(path, "statx"))
            r = StatxRaw(AT_FDCWD, p, 0, STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME, buffer);
        if (r < 0) throw LastError("statx", path);
        static long Ns(byte* t) => *(long*)t * 1_000_000_000L + *(uint*)(t + 8);
        return new FileIdentity(((ulong)*(uint*)(buffer + 136) << 32) | *(uint*)(buffer + 140), *(ulong*)(buffer + 32),
            *(long*)(buffer + 40), Ns(buffer + 112), Ns(buffer + 96));
    }

    public const uint S_IFMT = 0xF000, S_IFDIR = 0x4000;
}

/// <summary>One version of a file (<see cref="Sys.Identity"/>); <see cref="ChangedAt"/> is its ctime, ns since the epoch.</summary>
internal readonly record struct FileIdentity(ulong Device, ulong Inode, long Size, long ModifiedAt, long ChangedAt);
