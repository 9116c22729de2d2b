using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Garden.Linux.Interop;

/// <summary>An inotify instance; reading it yields the events of its watches.</summary>
internal sealed class SafeInotifyHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeInotifyHandle(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;
}

[Flags]
internal enum InotifyInitFlags
{
    None = 0,
    NonBlock = 0x800,  // IN_NONBLOCK
    CloExec = 0x80000, // IN_CLOEXEC
}

[Flags]
internal enum InotifyMask : uint
{
    None = 0,
    Modify = 0x2,          // IN_MODIFY
    Attrib = 0x4,          // IN_ATTRIB
    CloseWrite = 0x8,      // IN_CLOSE_WRITE
    DeleteSelf = 0x400,    // IN_DELETE_SELF
    Unmount = 0x2000,      // IN_UNMOUNT
    QueueOverflow = 0x4000, // IN_Q_OVERFLOW
    Ignored = 0x8000,      // IN_IGNORED: the watch is gone (removed, or its file deleted)
}

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "inotify_init1", SetLastError = true)]
    private static partial int InotifyInit1(int flags);

    [LibraryImport("libc", EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int InotifyAddWatchRaw(int fd, string path, uint mask);

    [LibraryImport("libc", EntryPoint = "inotify_rm_watch", SetLastError = true)]
    private static partial int InotifyRmWatchRaw(int fd, int wd);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint InotifyReadRaw(int fd, byte* buffer, nuint count);

    public static SafeInotifyHandle InotifyInit(InotifyInitFlags flags)
    {
        var fd = InotifyInit1((int)flags);
        if (fd < 0) throw LastError("inotify_init1");
        return new SafeInotifyHandle(fd);
    }

    /// <summary>Watches a path; returns the watch descriptor (not a file descriptor).</summary>
    public static int InotifyAddWatch(SafeInotifyHandle inotify, string path, InotifyMask mask)
    {
        var added = false;
        inotify.DangerousAddRef(ref added);
        try
        {
            var wd = InotifyAddWatchRaw((int)inotify.DangerousGetHandle(), path, (uint)mask);
            if (wd < 0) throw LastError("inotify_add_watch", path);
            return wd;
        }
        finally
        {
            if (added) inotify.DangerousRelease();
        }
    }

    /// <summary>Removes a watch (the kernel queues IN_IGNORED for it, waking a blocked reader);
    /// false if the watch was already gone (EINVAL: its file was deleted).</summary>
    public static bool InotifyRmWatch(SafeInotifyHandle inotify, int wd)
    {
        var added = false;
        inotify.DangerousAddRef(ref added);
        try
        {
            if (InotifyRmWatchRaw((int)inotify.DangerousGetHandle(), wd) == 0) return true;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EINVAL) return false;
            throw new LinuxException("inotify_rm_watch", wd.ToString(), errno);
        }
        finally
        {
            if (added) inotify.DangerousRelease();
        }
    }

    /// <summary>Blocks until events are queued; returns the union of their masks (names are not needed by callers
    /// that watch single files).</summary>
    public static InotifyMask InotifyRead(SafeInotifyHandle inotify)
    {
        const int headerSize = 16; // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[]; }
        var buffer = stackalloc byte[4096];
        var added = false;
        inotify.DangerousAddRef(ref added);
        try
        {
            nint n;
            while ((n = InotifyReadRaw((int)inotify.DangerousGetHandle(), buffer, 4096)) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) throw new LinuxException("read", "inotify", errno);
            }
            var mask = InotifyMask.None;
            for (nint off = 0; off + headerSize <= n;)
            {
                mask |= (InotifyMask)(*(uint*)(buffer + off + 4));
                off += headerSize + (nint)(*(uint*)(buffer + off + 12));
            }
            return mask;
        }
        finally
        {
            if (added) inotify.DangerousRelease();
        }
    }
}
