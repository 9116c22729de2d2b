using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    // Our own import: Tmds.LibC's poll does not keep errno (SetLastError = false), and EINTR must be told apart.
    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int PollRaw(pollfd* fds, nuint nfds, int timeoutMs);

    /// <summary>Blocks until the fd is readable (a pidfd: its process exited) or the timeout passes; true if readable.</summary>
    public static bool PollReadable(SafeFd handle, int timeoutMs, string what)
    {
        using var fd = new FdRef(handle);
        var p = new pollfd { fd = fd.Fd, events = LibC.POLLIN };
        while (true)
        {
            var r = PollRaw(&p, 1, timeoutMs);
            if (r > 0) return true;
            if (r == 0) return false;
            if (Errno != LibC.EINTR) throw LastError("poll", what);
        }
    }
}
