using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    // linux/mount.h; Tmds.LibC has none of the new mount API (glibc has since 2.36)
    private const uint FSOPEN_CLOEXEC = 0x1;
    private const uint FSMOUNT_CLOEXEC = 0x1;
    private const uint FSCONFIG_SET_STRING = 1;
    private const uint FSCONFIG_SET_FD = 5;
    private const uint FSCONFIG_CMD_CREATE = 6;

    [LibraryImport("libc", EntryPoint = "fsopen", SetLastError = true)]
    private static partial int FsopenRaw(byte* fsType, uint flags);

    [LibraryImport("libc", EntryPoint = "fsconfig", SetLastError = true)]
    private static partial int FsconfigRaw(int fd, uint cmd, byte* key, byte* value, int aux);

    [LibraryImport("libc", EntryPoint = "fsmount", SetLastError = true)]
    private static partial int FsmountRaw(int fd, uint flags, uint attrs);

    /// <summary>fsopen(2): a file system context of <paramref name="fsType"/> to be configured with
    /// <see cref="FsconfigString"/>/<see cref="FsconfigFd"/>, made with <see cref="FsconfigCreate"/>.</summary>
    public static SafeFd Fsopen(string fsType)
    {
        fixed (byte* t = Utf8z(fsType, "fsopen"))
        {
            var fd = FsopenRaw(t, FSOPEN_CLOEXEC);
            if (fd < 0) throw LastError("fsopen", fsType);
            return new SafeFd(fd);
        }
    }

    /// <summary>fsconfig(FSCONFIG_SET_STRING): one parameter of the context (e.g. <c>lowerdir+</c>, a single path, unescaped).</summary>
    public static void FsconfigString(SafeFd context, string key, string value)
    {
        using var fd = new FdRef(context);
        fixed (byte* k = Utf8z(key, "fsconfig"))
        fixed (byte* v = Utf8z(value, "fsconfig"))
            if (FsconfigRaw(fd.Fd, FSCONFIG_SET_STRING, k, v, 0) < 0)
                throw ContextError(context, $"fsconfig {key}", value);
    }

    /// <summary>fsconfig(FSCONFIG_SET_FD): a parameter given as an open file: a directory, or a detached mount tree from
    /// open_tree (an idmapped layer that is attached nowhere).</summary>
    public static void FsconfigFd(SafeFd context, string key, SafeFd value, string what)
    {
        using var fd = new FdRef(context);
        using var v = new FdRef(value);
        fixed (byte* k = Utf8z(key, "fsconfig"))
            if (FsconfigRaw(fd.Fd, FSCONFIG_SET_FD, k, null, v.Fd) < 0)
                throw ContextError(context, $"fsconfig {key}", what);
    }

    /// <summary>fsconfig(FSCONFIG_CMD_CREATE): makes the file system (for overlayfs: checks and opens every layer).</summary>
    public static void FsconfigCreate(SafeFd context, string what)
    {
        using var fd = new FdRef(context);
        if (FsconfigRaw(fd.Fd, FSCONFIG_CMD_CREATE, null, null, 0) < 0)
            throw ContextError(context, "fsconfig create", what);
    }

    /// <summary>fsmount(2): the made file system as a detached mount with <paramref name="attrs"/> (attach it with
    /// <see cref="MoveMount"/>; closing it unattached unmounts it).</summary>
    public static SafeFd Fsmount(SafeFd context, MountAttr attrs, string what)
    {
        using var fd = new FdRef(context);
        var m = FsmountRaw(fd.Fd, FSMOUNT_CLOEXEC, (uint)attrs);
        if (m < 0) throw ContextError(context, "fsmount", what);
        return new SafeFd(m);
    }

    /// <summary>The failed call's errno, with what the file system said about it: the kernel queues its messages on the
    /// context ("e overlayfs: ..."), which say more than EINVAL does.</summary>
    private static LinuxException ContextError(SafeFd context, string call, string what)
    {
        var errno = Errno;
        var said = new StringBuilder();
        using (var fd = new FdRef(context))
        {
            var buf = stackalloc byte[1024];
            for (var i = 0; i < 8; i++)
            {
                var n = LibC.read(fd.Fd, buf, 1024);
                if (n <= 0) break;
                said.Append(said.Length > 0 ? "; " : "").Append(Encoding.UTF8.GetString(buf, (int)n).TrimEnd('\n'));
            }
        }
        return new LinuxException(call, said.Length > 0 ? $"{what} ({said})" : what, errno);
    }
}
