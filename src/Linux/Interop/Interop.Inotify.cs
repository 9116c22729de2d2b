using System.Globalization;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>The event bits of sys/inotify.h (Tmds.LibC has no inotify).</summary>
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
    private static partial int InotifyInit1Raw(int flags);

    [LibraryImport("libc", EntryPoint = "inotify_add_watch", SetLastError = true)]
    private static partial int InotifyAddWatchRaw(int fd, byte* path, uint mask);

    [LibraryImport("libc", EntryPoint = "inotify_rm_watch", SetLastError = true)]
    private static partial int InotifyRmWatchRaw(int fd, int wd);

    /// <summary>inotify_init1(IN_CLOEXEC): an inotify instance; reading it yields the events of its watches.</summary>
    public static SafeFd InotifyInit(bool nonBlocking = false)
    {
        var fd = InotifyInit1Raw(LibC.O_CLOEXEC | (nonBlocking ? LibC.O_NONBLOCK : 0)); // IN_CLOEXEC, IN_NONBLOCK are O_CLOEXEC, O_NONBLOCK
        if (fd < 0) throw LastError("inotify_init1");
        return new SafeFd(fd);
    }

    /// <summary>Watches a path; returns the watch descriptor (not a file descriptor).</summary>
    public static int InotifyAddWatch(SafeFd inotify, string path, InotifyMask mask)
    {
        using var fd = new FdRef(inotify);
        fixed (byte* p = Utf8z(path, "inotify_add_watch"))
        {
            var wd = InotifyAddWatchRaw(fd.Fd, p, (uint)mask);
            if (wd < 0) throw LastError("inotify_add_watch", path);
            return wd;
        }
    }

    /// <summary>Removes a watch (the kernel queues IN_IGNORED for it, waking a blocked reader);
    /// false if the watch was already gone (EINVAL: its file was deleted).</summary>
    public static bool InotifyRmWatch(SafeFd inotify, int wd)
    {
        using var fd = new FdRef(inotify);
        if (InotifyRmWatchRaw(fd.Fd, wd) == 0) return true;
        var errno = Errno;
        if (errno == LibC.EINVAL) return false;
        throw new LinuxException("inotify_rm_watch", wd.ToString(CultureInfo.InvariantCulture), errno);
    }

    /// <summary>Reads every event queued on a non-blocking inotify instance, by watch descriptor (the masks of one watch
    /// OR'd together; a queue overflow comes as wd -1 with <see cref="InotifyMask.QueueOverflow"/>). Empty when none.</summary>
    public static Dictionary<int, InotifyMask> InotifyDrain(SafeFd inotify)
    {
        const int headerSize = 16;
        var buffer = stackalloc byte[4096];
        var events = new Dictionary<int, InotifyMask>();
        using var fd = new FdRef(inotify);
        while (true)
        {
            var n = LibC.read(fd.Fd, buffer, 4096);
            if (n < 0)
            {
                var errno = Errno;
                if (errno == LibC.EAGAIN) return events;
                if (errno != LibC.EINTR) throw LastError("read", "inotify");
                continue;
            }
            if (n == 0) return events;
            for (long off = 0; off + headerSize <= n;)
            {
                var wd = *(int*)(buffer + off);
                events[wd] = events.GetValueOrDefault(wd) | (InotifyMask)(*(uint*)(buffer + off + 4));
                off += headerSize + *(uint*)(buffer + off + 12);
            }
        }
    }
}
