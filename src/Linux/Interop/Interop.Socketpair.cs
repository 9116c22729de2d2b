using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    private static partial int SocketpairRaw(int domain, int type, int protocol, int* fds);

    /// <summary>socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC): two connected ends.</summary>
    public static (SafeSocketFd A, SafeSocketFd B) SocketPair()
    {
        var fds = stackalloc int[2];
        if (SocketpairRaw(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw LastError("socketpair");
        return (new SafeSocketFd(fds[0]), new SafeSocketFd(fds[1]));
    }
}
