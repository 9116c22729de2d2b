using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Garden.Linux.Interop;

/// <summary>A raw socket fd. Closing it only closes this fd: a copy handed to another process keeps listening
/// (System.Net.Sockets.Socket may shut the socket down on dispose, which would break that copy).</summary>
public sealed class SafeSocketFd : SafeHandleZeroOrMinusOneIsInvalid
{
    internal SafeSocketFd(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;
}

internal static unsafe partial class Sys
{
    private const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int Bind(int fd, byte* addr, int len);

    [LibraryImport("libc", EntryPoint = "listen", SetLastError = true)]
    private static partial int Listen(int fd, int backlog);

    /// <summary>Creates a listening Unix stream socket bound at <paramref name="path"/> (a stale file there is removed).</summary>
    public static SafeSocketFd ListenUnix(string path, int backlog)
    {
        var bytes = Encoding.UTF8.GetBytes(path);
        if (bytes.Length >= 108) throw new ArgumentException($"socket path too long (max 107 bytes): {path}", nameof(path));
        File.Delete(path);
        var fd = Socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw LastError("socket", path);
        var handle = new SafeSocketFd(fd);
        var addr = stackalloc byte[110];
        *(ushort*)addr = AF_UNIX;
        bytes.CopyTo(new Span<byte>(addr + 2, 108));
        addr[2 + bytes.Length] = 0;
        if (Bind(fd, addr, 2 + bytes.Length + 1) < 0) { var e = LastError("bind", path); handle.Dispose(); throw e; }
        if (Listen(fd, backlog) < 0) { var e = LastError("listen", path); handle.Dispose(); throw e; }
        return handle;
    }
}
