using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    // ioctl request of linux/nsfs.h: _IO(0xb7, 0x4)
    private const int NS_GET_OWNER_UID = 0xB704;

    /// <summary>The host uid that owns the user namespace <paramref name="ns"/> refers to (its creator's euid).</summary>
    public static uint UserNamespaceOwner(SafeFd ns, string path)
    {
        using var fd = new FdRef(ns);
        uint uid;
        ThrowIfError(LibC.ioctl(fd.Fd, NS_GET_OWNER_UID, &uid), "ioctl(NS_GET_OWNER_UID)", path);
        return uid;
    }
}
