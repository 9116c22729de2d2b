using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>One ready fd from <see cref="Sys.EpollWait"/>: the tag it was added with and the events that happened.</summary>
internal readonly record struct EpollReady(ulong Tag, int Events);

internal static unsafe partial class Sys
{
    /// <summary>epoll_create1(EPOLL_CLOEXEC): an epoll instance, one thread waiting on many fds.</summary>
    public static SafeFd EpollCreate()
    {
        var fd = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        if (fd < 0) throw LastError("epoll_create1");
        return new SafeFd(fd);
    }

    /// <summary>Adds an fd for readability (level-triggered); the tag comes back with its events, so a closed and reused
    /// fd number is never mistaken for the one added.</summary>
    public static void EpollAdd(SafeFd epoll, SafeFd target, ulong tag, string what)
    {
        using var ep = new FdRef(epoll);
        using var fd = new FdRef(target);
        var ev = new epoll_event { events = LibC.EPOLLIN };
        ev.data.u64 = tag;
        if (LibC.epoll_ctl(ep.Fd, LibC.EPOLL_CTL_ADD, fd.Fd, &ev) < 0) throw LastError("epoll_ctl ADD", what);
    }

    /// <summary>Removes an fd (before it is closed); an fd that is not in the set any more (ENOENT) is fine.</summary>
    public static void EpollRemove(SafeFd epoll, SafeFd target, string what)
    {
        using var ep = new FdRef(epoll);
        using var fd = new FdRef(target);
        var ev = default(epoll_event);
        if (LibC.epoll_ctl(ep.Fd, LibC.EPOLL_CTL_DEL, fd.Fd, &ev) < 0 && Errno != LibC.ENOENT) throw LastError("epoll_ctl DEL", what);
    }

    /// <summary>Waits until at least one fd is ready or the timeout passes (-1: no timeout; an interrupted wait returns
    /// nothing); fills <paramref name="ready"/> and returns how many.</summary>
    public static int EpollWait(SafeFd epoll, Span<EpollReady> ready, int timeoutMs)
    {
        using var ep = new FdRef(epoll);
        var max = Math.Min(ready.Length, 64);
        var events = stackalloc epoll_event[max];
        var n = LibC.epoll_wait(ep.Fd, events, max, timeoutMs);
        if (n < 0)
        {
            if (Errno == LibC.EINTR) return 0;
            throw LastError("epoll_wait");
        }
        for (var i = 0; i < n; i++) ready[i] = new EpollReady(events[i].data.u64, events[i].events);
        return n;
    }
}
