using System.Text;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>A listening Unix stream socket bound at <paramref name="path"/> (a stale file there is removed), close-on-exec.
    /// A raw fd rather than a System.Net.Sockets.Socket: closing it only closes this fd, while Socket may shut the socket
    /// down on dispose, which would break the copy handed to another process.</summary>
    public static SafeFd ListenUnix(string path, int backlog)
    {
        var bytes = Utf8z(path, "bind");
        var addr = new sockaddr_un { sun_family = LibC.AF_UNIX };
        if (bytes.Length > sockaddr_un.sun_path_length)
            throw new ArgumentException($"socket path too long (max {sockaddr_un.sun_path_length - 1} bytes): {path}", nameof(path));
        bytes.CopyTo(new Span<byte>(addr.sun_path, sockaddr_un.sun_path_length));
        File.Delete(path);
        var fd = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0);
        if (fd < 0) throw LastError("socket", path);
        var socket = new SafeFd(fd);
        var length = sockaddr_un.sun_path_offset + bytes.Length;
        if (LibC.bind(fd, (sockaddr*)&addr, length) < 0) { var e = LastError("bind", path); socket.Dispose(); throw e; }
        if (LibC.listen(fd, backlog) < 0) { var e = LastError("listen", path); socket.Dispose(); throw e; }
        return socket;
    }
}
