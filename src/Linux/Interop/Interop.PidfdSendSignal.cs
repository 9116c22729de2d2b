using System.Globalization;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    private const int SYS_pidfd_send_signal = 424; // the same number on every architecture

    /// <summary>pidfd_send_signal(2): signals the process behind a pidfd (no pid-reuse race); false if it has already
    /// exited (ESRCH).</summary>
    public static bool PidfdSendSignal(SafeFd pidfd, int signal)
    {
        using var fd = new FdRef(pidfd);
        if ((int)LibC.syscall(SYS_pidfd_send_signal, fd.Fd, signal, 0, 0u) == 0) return true;
        var errno = Errno;
        if (errno == LibC.ESRCH) return false;
        throw new LinuxException("pidfd_send_signal", signal.ToString(CultureInfo.InvariantCulture), errno);
    }
}
