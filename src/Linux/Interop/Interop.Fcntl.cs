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

internal static unsafe partial class Sys
{
    /// <summary>fcntl(F_SETFL, | O_NONBLOCK): reads return EAGAIN instead of waiting.</summary>
    public static void SetNonBlocking(SafeHandle handle)
    {
        using var fd = new FdRef(handle);
        var flags = LibC.fcntl(fd.Fd, LibC.F_GETFL, 0);
        if (flags < 0 || LibC.fcntl(fd.Fd, LibC.F_SETFL, flags | LibC.O_NONBLOCK) < 0) throw LastError("fcntl(F_SETFL, O_NONBLOCK)");
    }

    /// <summary>read(2) of a non-blocking fd: the bytes read, 0 at its end, -1 when nothing is there yet (EAGAIN).</summary>
    public static int ReadNonBlocking(SafeHandle handle, byte[] buffer)
    {
        using var fd = new FdRef(handle);
        fixed (byte* b = buffer)
            while (true)
            {
                var n = (int)LibC.read(fd.Fd, b, buffer.Length);
                if (n >= 0) return n;
                var errno = Errno;
                if (errno == LibC.EINTR) continue;
                if (errno == LibC.EAGAIN) return -1;
                throw new LinuxException("read", null, errno);
            }
    }
}
