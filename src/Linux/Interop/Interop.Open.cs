using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Garden.Linux.Interop;

/// <summary>A plain file descriptor from open(2): a device node (/dev/loop-control, /dev/loopN) or a file.</summary>
internal sealed class SafeFdHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeFdHandle(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;
}

[Flags]
internal enum OpenFlags
{
    ReadOnly = 0,
    WriteOnly = 1,
    ReadWrite = 2,
    Create = 0x40,
    Exclusive = 0x80,
    Truncate = 0x200,
    Directory = 0x10000,
    CloseOnExec = 0x80000,
}

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenRaw(string path, OpenFlags flags, uint mode);

    /// <summary>open(2), always close-on-exec.</summary>
    public static SafeFdHandle Open(string path, OpenFlags flags, uint mode = 0)
    {
        int fd;
        do fd = OpenRaw(path, flags | OpenFlags.CloseOnExec, mode);
        while (fd < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (fd < 0) throw LastError("open", path);
        return new SafeFdHandle(fd);
    }

    /// <summary>open(2) that returns null when the path does not exist (ENOENT/ENXIO), for cleanup paths.</summary>
    public static SafeFdHandle? TryOpen(string path, OpenFlags flags)
    {
        var fd = OpenRaw(path, flags | OpenFlags.CloseOnExec, 0);
        if (fd >= 0) return new SafeFdHandle(fd);
        var errno = Marshal.GetLastPInvokeError();
        if (errno is ENOENT or ENXIO) return null;
        throw new LinuxException("open", path, errno);
    }
}
