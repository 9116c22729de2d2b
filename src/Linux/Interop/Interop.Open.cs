using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>open(2) with <c>LibC.O_*</c> flags, always close-on-exec; EINTR is retried.</summary>
    public static SafeFd Open(string path, int flags, ushort mode = 0)
    {
        var fd = OpenRaw(path, flags, mode);
        if (fd < 0) throw LastError("open", path);
        return new SafeFd(fd);
    }

    /// <summary>open(2) that returns null when the path does not exist (ENOENT, or ENXIO for a device node without a
    /// device), for cleanup paths.</summary>
    public static SafeFd? TryOpen(string path, int flags)
    {
        var fd = OpenRaw(path, flags, 0);
        if (fd >= 0) return new SafeFd(fd);
        var errno = Errno;
        if (errno == LibC.ENOENT || errno == LibC.ENXIO) return null;
        throw new LinuxException("open", path, errno);
    }

    private static int OpenRaw(string path, int flags, ushort mode)
    {
        fixed (byte* p = Utf8z(path, "open"))
        {
            int fd;
            do fd = LibC.open(p, flags | LibC.O_CLOEXEC, mode);
            while (fd < 0 && Errno == LibC.EINTR);
            return fd;
        }
    }
}
