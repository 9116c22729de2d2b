using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    /// <summary>fcntl(F_DUPFD_CLOEXEC): a close-on-exec duplicate at the lowest free fd at or above <paramref name="minFd"/>.</summary>
    public static SafeFd FcntlDupCloexec(SafeHandle handle, int minFd)
    {
        using var fd = new FdRef(handle);
        var dup = LibC.fcntl(fd.Fd, LibC.F_DUPFD_CLOEXEC, minFd);
        if (dup < 0) throw LastError("fcntl(F_DUPFD_CLOEXEC)");
        return new SafeFd(dup);
    }
}
