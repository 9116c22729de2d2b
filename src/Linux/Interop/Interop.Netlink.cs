using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    private const int NETLINK_ROUTE = 0; // linux/netlink.h; Tmds.LibC has AF_NETLINK but not the protocols

    /// <summary>socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE): an rtnetlink socket of the calling thread's
    /// network namespace.</summary>
    public static SafeFd RtnetlinkSocket()
    {
        var fd = LibC.socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) throw LastError("socket(AF_NETLINK)");
        return new SafeFd(fd);
    }

    /// <summary>send(2) of one whole datagram (a netlink message), retried on EINTR.</summary>
    public static void SendDatagram(SafeFd socket, ReadOnlySpan<byte> message, string what)
    {
        using var fd = new FdRef(socket);
        fixed (byte* p = message)
            while (LibC.send(fd.Fd, p, message.Length, 0) < 0)
                if (Errno != LibC.EINTR) throw LastError("send", what);
    }

    /// <summary>recv(2) of one datagram into <paramref name="buffer"/>, retried on EINTR; returns its length.</summary>
    public static int ReceiveDatagram(SafeFd socket, Span<byte> buffer, string what)
    {
        using var fd = new FdRef(socket);
        fixed (byte* b = buffer)
            while (true)
            {
                var n = (int)LibC.recv(fd.Fd, b, buffer.Length, 0);
                if (n >= 0) return n;
                if (Errno != LibC.EINTR) throw LastError("recv", what);
            }
    }
}
