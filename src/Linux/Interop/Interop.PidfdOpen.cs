using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Garden.Linux.Interop;

/// <summary>A pidfd: refers to one process, readable (POLLIN) once it has exited.</summary>
internal sealed class SafePidfdHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafePidfdHandle(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;
}

[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}

internal static unsafe partial class Sys
{
    private const int SYS_pidfd_open = 434;
    public const short POLLIN = 1;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial int Syscall2(long number, int a, uint b);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(PollFd* fds, ulong nfds, int timeoutMs);

    /// <summary>Opens a pidfd; null if the process is already gone (ESRCH).</summary>
    public static SafePidfdHandle? PidfdOpen(int pid)
    {
        var fd = Syscall2(SYS_pidfd_open, pid, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ESRCH) return null;
            throw new LinuxException("pidfd_open", pid.ToString(), errno);
        }
        return new SafePidfdHandle(fd);
    }

    /// <summary>Blocks until the process behind the pidfd exits or the timeout passes; true if it exited.</summary>
    public static bool WaitPidfd(SafePidfdHandle pidfd, int timeoutMs)
    {
        var added = false;
        pidfd.DangerousAddRef(ref added);
        try
        {
            var p = new PollFd { Fd = (int)pidfd.DangerousGetHandle(), Events = POLLIN };
            while (true)
            {
                var r = Poll(&p, 1, timeoutMs);
                if (r > 0) return true;
                if (r == 0) return false;
                var errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) throw new LinuxException("poll", "pidfd", errno);
            }
        }
        finally
        {
            if (added) pidfd.DangerousRelease();
        }
    }
}

internal static unsafe partial class Sys
{
    private const int SYS_pidfd_send_signal = 424;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial int Syscall4(long number, int a, int b, void* c, uint d);

    /// <summary>Signals the process behind a pidfd (no pid-reuse race); false if it has already exited (ESRCH).</summary>
    public static bool PidfdSendSignal(SafePidfdHandle pidfd, int signal)
    {
        var added = false;
        pidfd.DangerousAddRef(ref added);
        try
        {
            if (Syscall4(SYS_pidfd_send_signal, (int)pidfd.DangerousGetHandle(), signal, null, 0) == 0) return true;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ESRCH) return false;
            throw new LinuxException("pidfd_send_signal", signal.ToString(), errno);
        }
        finally
        {
            if (added) pidfd.DangerousRelease();
        }
    }
}
