using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

[Flags]
internal enum MountFlags : ulong
{
    None = 0,
    ReadOnly = 1,
    NoSuid = 2,
    NoDev = 4,
    NoExec = 8,
    Remount = 32,
    Bind = 4096,
    Rec = 16384,
    Private = 1 << 18,
}

[Flags]
internal enum UnmountFlags
{
    None = 0,
    Force = 1,
    Detach = 2,
    NoFollow = 8,
}

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MountRaw(string source, string target, string? fstype, MountFlags flags, string? data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Umount2Raw(string target, UnmountFlags flags);

    public static void Mount(string source, string target, string? fstype, MountFlags flags, string? data) =>
        ThrowIfError(MountRaw(source, target, fstype, flags, data), "mount", target);

    /// <summary>Unmounts; a target that is not mounted (EINVAL) or missing (ENOENT) counts as done.</summary>
    public static void Unmount(string target, UnmountFlags flags)
    {
        if (Umount2Raw(target, flags) == 0) return;
        var errno = Marshal.GetLastPInvokeError();
        if (errno is EINVAL or ENOENT) return;
        throw new LinuxException("umount2", target, errno);
    }
}
