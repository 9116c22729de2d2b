using System.Globalization;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    private static partial int WaitPidRaw(int pid, int* status, int options); // Tmds.LibC has no waitpid

    /// <summary>Waits for a child and returns its exit code (128+signal when killed by a signal).</summary>
    public static int WaitForChild(int pid)
    {
        int status;
        while (true)
        {
            var r = WaitPidRaw(pid, &status, 0);
            if (r == pid) break;
            var errno = Errno;
            if (r < 0 && errno == LibC.EINTR) continue;
            throw new LinuxException("waitpid", pid.ToString(CultureInfo.InvariantCulture), errno);
        }
        var termSig = status & 0x7f;
        return termSig == 0 ? (status >> 8) & 0xff : 128 + termSig;
    }
}
