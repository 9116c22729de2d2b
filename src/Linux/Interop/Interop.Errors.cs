using System.Runtime.InteropServices;
using System.Text;

namespace Garden.Linux.Interop;

/// <summary>A failed system call: names the call, the path it was about and the errno text.</summary>
public sealed class LinuxException(string call, string? path, int errno)
    : Exception($"{call}{(path is null ? "" : $" {path}")}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
{
    public string Call { get; } = call;
    public string? PathName { get; } = path;
    public int Errno { get; } = errno;
}

/// <summary>The system calls of the effects layer, one file per call (Interop.Open.cs, Interop.Mount.cs, ...). Calls and
/// constants come from Tmds.LibC (<c>LibC.open</c>, <c>LibC.O_CLOEXEC</c>, <c>LibC.ENOENT</c>); a LibraryImport of our own
/// is only for what it lacks (open_tree, move_mount, mount_setattr, fsopen/fsconfig/fsmount, inotify, waitpid, posix_spawn, realpath, and poll,
/// whose binding there does not keep errno).</summary>
internal static partial class Sys
{
    /// <summary>errno of the last call (Tmds.LibC's and our imports both set it).</summary>
    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>The one place errno turns into an exception.</summary>
    public static LinuxException LastError(string call, string? path = null) => new(call, path, Errno);

    public static void ThrowIfError(int result, string call, string? path = null)
    {
        if (result < 0) throw LastError(call, path);
    }

    /// <summary>A path as the kernel takes it: UTF-8 and NUL-terminated. A NUL inside would silently cut the path short
    /// (and so name another file), so it is refused.</summary>
    public static byte[] Utf8z(string s, string call)
    {
        if (s.Contains('\0')) throw new ArgumentException($"{call}: a path must not contain a NUL character: {s.Replace("\0", "\\0")}");
        var bytes = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
