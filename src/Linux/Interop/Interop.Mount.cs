using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>mount(2) with <c>LibC.MS_*</c> flags.</summary>
    public static void Mount(string source, string target, string? fstype, ulong flags, string? data)
    {
        fixed (byte* s = Utf8z(source, "mount"))
        fixed (byte* t = Utf8z(target, "mount"))
        fixed (byte* f = fstype is null ? null : Utf8z(fstype, "mount"))
        fixed (byte* d = data is null ? null : Utf8z(data, "mount"))
            ThrowIfError(LibC.mount(s, t, f, (ulong_t)flags, d), "mount", target);
    }

    /// <summary>umount2(2) with <c>LibC.MNT_*</c> flags; a target that is not mounted (EINVAL) or missing (ENOENT)
    /// counts as done.</summary>
    public static void Unmount(string target, int flags)
    {
        fixed (byte* t = Utf8z(target, "umount2"))
        {
            if (LibC.umount2(t, flags) == 0) return;
        }
        var errno = Errno;
        if (errno == LibC.EINVAL || errno == LibC.ENOENT) return;
        throw new LinuxException("umount2", target, errno);
    }
}
