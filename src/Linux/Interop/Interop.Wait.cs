using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "waitpid", SetLastError = true)]
    public static partial int WaitPid(int pid, int* status, int options);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>Waits for a child and returns its exit code (128+signal when killed by a signal).</summary>
    public static int WaitForChild(int pid)
    {
        int status;
        while (true)
        {
            var r = WaitPid(pid, &status, 0);
            if (r == pid) break;
            var errno = Marshal.GetLastPInvokeError();
            if (r < 0 && errno == EINTR) continue;
            throw new LinuxException("waitpid", pid.ToString(), errno);
        }
        var termSig = status & 0x7f;
        return termSig == 0 ? (status >> 8) & 0xff : 128 + termSig;
    }
}
