using System.Globalization;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    private const int SYS_pidfd_open = 434; // the same number on every architecture; Tmds.LibC has no pidfd calls

    /// <summary>pidfd_open(2): an fd that refers to one process and polls readable once it has exited; null if the
    /// process is already gone (ESRCH).</summary>
    public static SafeFd? PidfdOpen(int pid)
    {
        var fd = (int)LibC.syscall(SYS_pidfd_open, pid, 0);
        if (fd >= 0) return new SafeFd(fd);
        var errno = Errno;
        if (errno == LibC.ESRCH) return null;
        throw new LinuxException("pidfd_open", pid.ToString(CultureInfo.InvariantCulture), errno);
    }
}
