using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Garden.Linux.Interop;

/// <summary>An eventfd: a kernel counter; read blocks until it is non-zero and resets it.</summary>
internal sealed class SafeEventfdHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeEventfdHandle(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;
}

[Flags]
internal enum EventfdFlags
{
    None = 0,
    Semaphore = 0x1,   // EFD_SEMAPHORE
    NonBlock = 0x800,  // EFD_NONBLOCK
    CloExec = 0x80000, // EFD_CLOEXEC
}

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventfdRaw(uint initval, int flags);

    [LibraryImport("libc", EntryPoint = "eventfd_read", SetLastError = true)]
    private static partial int EventfdReadRaw(int fd, ulong* value);

    [LibraryImport("libc", EntryPoint = "eventfd_write", SetLastError = true)]
    private static partial int EventfdWriteRaw(int fd, ulong value);

    public static SafeEventfdHandle Eventfd(uint initialValue, EventfdFlags flags)
    {
        var fd = EventfdRaw(initialValue, (int)flags);
        if (fd < 0) throw LastError("eventfd");
        return new SafeEventfdHandle(fd);
    }

    /// <summary>Blocks until the counter is non-zero, returns it and resets it to zero.</summary>
    public static ulong EventfdRead(SafeEventfdHandle efd)
    {
        var added = false;
        efd.DangerousAddRef(ref added);
        try
        {
            ulong value;
            while (EventfdReadRaw((int)efd.DangerousGetHandle(), &value) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) throw new LinuxException("eventfd_read", null, errno);
            }
            return value;
        }
        finally
        {
            if (added) efd.DangerousRelease();
        }
    }

    /// <summary>Adds to the counter (wakes a blocked reader).</summary>
    public static void EventfdWrite(SafeEventfdHandle efd, ulong value)
    {
        var added = false;
        efd.DangerousAddRef(ref added);
        try
        {
            while (EventfdWriteRaw((int)efd.DangerousGetHandle(), value) < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) throw new LinuxException("eventfd_write", null, errno);
            }
        }
        finally
        {
            if (added) efd.DangerousRelease();
        }
    }

    /// <summary>cgroup v1 notification API: writes "&lt;eventfd&gt; &lt;target fd&gt;[ args]" to cgroup.event_control,
    /// so the kernel signals the eventfd on the target file's event (memory.oom_control: OOM; and always on cgroup removal).</summary>
    public static void RegisterCgroupEvent(string eventControlPath, SafeEventfdHandle efd, SafeHandle target, string? args = null)
    {
        bool addedE = false, addedT = false;
        efd.DangerousAddRef(ref addedE);
        target.DangerousAddRef(ref addedT);
        try
        {
            var line = string.Create(CultureInfo.InvariantCulture,
                $"{(int)efd.DangerousGetHandle()} {(int)target.DangerousGetHandle()}{(args is null ? "" : " " + args)}");
            File.WriteAllText(eventControlPath, line);
        }
        finally
        {
            if (addedT) target.DangerousRelease();
            if (addedE) efd.DangerousRelease();
        }
    }
}
