using System.Globalization;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>eventfd(2), close-on-exec: a kernel counter; reading blocks until it is non-zero and resets it.</summary>
    public static SafeFd Eventfd(uint initialValue, bool nonBlocking = false)
    {
        var fd = LibC.eventfd(initialValue, LibC.EFD_CLOEXEC | (nonBlocking ? LibC.EFD_NONBLOCK : 0));
        if (fd < 0) throw LastError("eventfd");
        return new SafeFd(fd);
    }

    /// <summary>Blocks until the counter is non-zero, returns it and resets it to zero (eventfd_read).</summary>
    public static ulong EventfdRead(SafeFd eventfd)
    {
        using var fd = new FdRef(eventfd);
        ulong value;
        while (LibC.read(fd.Fd, &value, sizeof(ulong)) < 0)
            if (Errno != LibC.EINTR) throw LastError("read", "eventfd");
        return value;
    }

    /// <summary>Reads and resets the counter of a non-blocking eventfd; 0 when it was zero (EAGAIN).</summary>
    public static ulong EventfdTryRead(SafeFd eventfd)
    {
        using var fd = new FdRef(eventfd);
        ulong value;
        while (LibC.read(fd.Fd, &value, sizeof(ulong)) < 0)
        {
            var errno = Errno;
            if (errno == LibC.EAGAIN) return 0;
            if (errno != LibC.EINTR) throw LastError("read", "eventfd");
        }
        return value;
    }

    /// <summary>Adds to the counter, which wakes a blocked reader (eventfd_write).</summary>
    public static void EventfdWrite(SafeFd eventfd, ulong value)
    {
        using var fd = new FdRef(eventfd);
        while (LibC.write(fd.Fd, &value, sizeof(ulong)) < 0)
            if (Errno != LibC.EINTR) throw LastError("write", "eventfd");
    }

    /// <summary>cgroup v1 notification API: writes "&lt;eventfd&gt; &lt;target fd&gt;[ args]" to cgroup.event_control,
    /// so the kernel signals the eventfd on the target file's event (memory.oom_control: OOM; and always on cgroup removal).</summary>
    public static void RegisterCgroupEvent(string eventControlPath, SafeFd eventfd, SafeHandle target, string? args = null)
    {
        using var efd = new FdRef(eventfd);
        using var tfd = new FdRef(target);
        File.WriteAllText(eventControlPath, string.Create(CultureInfo.InvariantCulture,
            $"{efd.Fd} {tfd.Fd}{(args is null ? "" : " " + args)}"));
    }
}
