using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    private const int F_DUPFD_CLOEXEC = 1030;

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int cmd, int arg);

    /// <summary>Duplicates a handle to the lowest free fd at or above <paramref name="minFd"/>, close-on-exec.</summary>
    public static int FcntlDupCloexec(SafeHandle handle, int minFd)
    {
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            var fd = Fcntl((int)handle.DangerousGetHandle(), F_DUPFD_CLOEXEC, minFd);
            if (fd < 0) throw LastError("fcntl(F_DUPFD_CLOEXEC)");
            return fd;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }
}
