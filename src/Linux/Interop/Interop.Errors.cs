using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

/// <summary>A failed system call: names the call, the path it was about and the errno text.</summary>
public sealed class LinuxException(string call, string? path, int errno)
    : Exception($"{call}{(path is null ? "" : $" {path}")}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})")
{
    public string Call { get; } = call;
    public string? PathName { get; } = path;
    public int Errno { get; } = errno;
}

internal static partial class Sys
{
    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EAGAIN = 11, EBUSY = 16, EEXIST = 17, EINVAL = 22, ECHILD = 10;

    /// <summary>The one place errno turns into an exception.</summary>
    public static LinuxException LastError(string call, string? path = null) =>
        new(call, path, Marshal.GetLastPInvokeError());

    public static void ThrowIfError(int result, string call, string? path = null)
    {
        if (result < 0) throw LastError(call, path);
    }
}
