using System.Globalization;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    /// <summary>kill(2); false if the process is already gone (ESRCH).</summary>
    public static bool Kill(int pid, int signal)
    {
        if (LibC.kill(pid, signal) == 0) return true;
        var errno = Errno;
        if (errno == LibC.ESRCH) return false;
        throw new LinuxException("kill", pid.ToString(CultureInfo.InvariantCulture), errno);
    }
}
