using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;

namespace Garden.Agent.Tar;

/// <summary>The *at() calls the file tools need: every path is resolved one component at a time from a directory fd, never
/// through a symlink, so neither an archive nor a process racing with it can redirect a write. The calls and constants are
/// Tmds.LibC's (linked statically into the agent like the rest of libc); these wrappers take strings and return what the
/// call returns, with errno in <see cref="Errno"/>.</summary>
internal static unsafe partial class FsNative
{
    internal static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>A path as the kernel takes it: UTF-8, NUL-terminated; null when the string itself holds a NUL (which would
    /// cut the path short), and the wrappers then fail with EINVAL without calling the kernel.</summary>
    private static byte[]? Z(string s)
    {
        if (s.Contains('\0')) return null;
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }

    private static int Invalid()
    {
        Marshal.SetLastPInvokeError(LibC.EINVAL);
        return -1;
    }

    internal static int OpenAt(int dirfd, string path, int flags, ushort mode)
    {
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z) return LibC.openat(dirfd, p, flags, mode);
    }

    internal static int MkdirAt(int dirfd, string path, ushort mode)
    {
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z) return LibC.mkdirat(dirfd, p, mode);
    }

    internal static int MkfifoAt(int dirfd, string path, ushort mode)
    {
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z) return LibC.mkfifoat(dirfd, p, mode);
    }

    internal static int UnlinkAt(int dirfd, string path, int flags)
    {
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z) return LibC.unlinkat(dirfd, p, flags);
    }

    internal static int SymlinkAt(string target, int dirfd, string path)
    {
        if (Z(target) is not { } t || Z(path) is not { } z) return Invalid();
        fixed (byte* tp = t)
        fixed (byte* p = z)
            return LibC.symlinkat(tp, dirfd, p);
    }

    internal static int FchownAt(int dirfd, string path, uint uid, uint gid, int flags)
    {
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z) return LibC.fchownat(dirfd, p, uid, gid, flags);
    }

    internal static int Fchown(int fd, uint uid, uint gid) => LibC.fchown(fd, uid, gid);

    internal static int Fchmod(int fd, ushort mode) => LibC.fchmod(fd, mode);

    internal static int UtimensAt(int dirfd, string path, timespec* times, int flags)
    {
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z) return LibC.utimensat(dirfd, p, times, flags);
    }

    internal static int Futimens(int fd, timespec* times) => LibC.futimens(fd, times);

    // Our own import: Tmds.LibC binds fstatat to glibc's __fxstatat, an entry point glibc 2.33 retired (kept for old
    // binaries only); this is the real one, with Tmds.LibC's struct stat.
    [LibraryImport("libc", EntryPoint = "fstatat", SetLastError = true)]
    private static partial int FstatAtRaw(int dirfd, byte* path, stat* st, int flags);

    internal static int FstatAt(int dirfd, string path, out stat st, int flags)
    {
        st = default;
        if (Z(path) is not { } z) return Invalid();
        fixed (byte* p = z)
        fixed (stat* s = &st)
            return FstatAtRaw(dirfd, p, s, flags);
    }

    internal static long Write(int fd, byte* buf, int count) => LibC.write(fd, buf, count);

    internal static int Close(int fd) => LibC.close(fd);

    internal static uint Geteuid() => LibC.geteuid();

    internal static void Umask(ushort mask) => LibC.umask(mask);

    /// <summary>The type bits of a mode (S_IFDIR, S_IFREG, ...).</summary>
    internal static mode_t Type(in stat st) => st.st_mode & LibC.S_IFMT;
}

/// <summary>A failed file-tool step: the exit code the daemon maps to a status, and the one-line reason for stderr.</summary>
internal sealed class ToolException(Garden.Protocol.Agent.ToolExit exit, string message) : Exception(message)
{
    public Garden.Protocol.Agent.ToolExit Exit { get; } = exit;

    /// <summary>errno of a failed call, named with what was being done and to which path.</summary>
    public static ToolException FromErrno(int errno, string what) => new(ExitFor(errno), $"{what}: {Native.ErrorText(errno)}");

    private static Garden.Protocol.Agent.ToolExit ExitFor(int errno)
    {
        if (errno == LibC.ENOSPC || errno == LibC.EDQUOT) return Garden.Protocol.Agent.ToolExit.ToolNoSpace;
        if (errno == LibC.EACCES || errno == LibC.EPERM || errno == LibC.EROFS) return Garden.Protocol.Agent.ToolExit.ToolDenied;
        if (errno == LibC.ENOENT) return Garden.Protocol.Agent.ToolExit.ToolNotFound;
        return Garden.Protocol.Agent.ToolExit.ToolFailed;
    }
}
