using System.Runtime.InteropServices;

namespace Garden.Agent.Tar;

/// <summary>The *at() calls the file tools need: every path is resolved one component at a time from a directory fd, never
/// through a symlink, so neither an archive nor a process racing with it can redirect a write (x86-64 Linux, glibc).</summary>
internal static unsafe partial class FsNative
{
    internal const int O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_DIRECTORY = 0x10000,
        O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000, O_PATH = 0x200000;
    internal const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000;
    internal const uint S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xA000, S_IFIFO = 0x1000;
    internal const int EPERM = 1, ENOENT = 2, EINTR = 4, EACCES = 13, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, ENOSPC = 28,
        EROFS = 30, ELOOP = 40, ENOTEMPTY = 39, EDQUOT = 122;

    /// <summary>struct stat of x86-64 Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Stat
    {
        public ulong Dev;
        public ulong Ino;
        public ulong Nlink;
        public uint Mode;
        public uint Uid;
        public uint Gid;
        private int _pad0;
        public ulong Rdev;
        public long Size;
        public long Blksize;
        public long Blocks;
        public long AtimeSec;
        public long AtimeNsec;
        public long MtimeSec;
        public long MtimeNsec;
        public long CtimeSec;
        public long CtimeNsec;
        private long _reserved0, _reserved1, _reserved2;

        public readonly uint Type => Mode & S_IFMT;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct Timespec
    {
        public long Sec;
        public long Nsec;
    }

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int OpenAt(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MkdirAt(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "mkfifoat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MkfifoAt(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int UnlinkAt(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "symlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int SymlinkAt(string target, int dirfd, string path);

    [LibraryImport("libc", EntryPoint = "fchownat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int FchownAt(int dirfd, string path, uint uid, uint gid, int flags);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    internal static partial int Fchown(int fd, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    internal static partial int Fchmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "utimensat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int UtimensAt(int dirfd, string path, Timespec* times, int flags);

    [LibraryImport("libc", EntryPoint = "futimens", SetLastError = true)]
    internal static partial int Futimens(int fd, Timespec* times);

    [LibraryImport("libc", EntryPoint = "fstatat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int FstatAt(int dirfd, string path, out Stat st, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    internal static partial nint Write(int fd, byte* buf, nint count);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    internal static partial nint Read(int fd, byte* buf, nint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint Geteuid();

    [LibraryImport("libc", EntryPoint = "umask")]
    internal static partial uint Umask(uint mask);

    internal static int Errno => Marshal.GetLastPInvokeError();
}

/// <summary>A directory or file descriptor owned by the file tools.</summary>
internal sealed class FsFd : SafeHandle
{
    public FsFd(int fd) : base(new IntPtr(-1), ownsHandle: true) => SetHandle(new IntPtr(fd));

    public override bool IsInvalid => handle.ToInt64() < 0;

    public int Value => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => FsNative.Close((int)handle.ToInt64()) == 0;
}

/// <summary>A failed file-tool step: the exit code the daemon maps to a status, and the one-line reason for stderr.</summary>
internal sealed class ToolException(Garden.Protocol.Agent.ToolExit exit, string message) : Exception(message)
{
    public Garden.Protocol.Agent.ToolExit Exit { get; } = exit;

    /// <summary>errno of a failed call, named with what was being done and to which path.</summary>
    public static ToolException FromErrno(int errno, string what) => new(errno switch
    {
        FsNative.ENOSPC or FsNative.EDQUOT => Garden.Protocol.Agent.ToolExit.ToolNoSpace,
        FsNative.EACCES or FsNative.EPERM or FsNative.EROFS => Garden.Protocol.Agent.ToolExit.ToolDenied,
        FsNative.ENOENT => Garden.Protocol.Agent.ToolExit.ToolNotFound,
        _ => Garden.Protocol.Agent.ToolExit.ToolFailed,
    }, $"{what}: {Native.ErrorText(errno)}");
}
