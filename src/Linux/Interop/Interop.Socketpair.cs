using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): two connected ends.</summary>
    public static (SafeFd A, SafeFd B) SocketPair()
    {
        var fds = stackalloc int[2];
        if (LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0, fds) < 0) throw LastError("socketpair");
        return (new SafeFd(fds[0]), new SafeFd(fds[1]));
    }
}
