namespace Garden.Linux.Host;

/// <summary>The kernel's per-user limits that count by host uid alone (not per user namespace, nor up a namespace's
/// owner), which with Garden's mapping every unprivileged container shares: its root is the one host uid 4294967294.
/// No value of a limit shared by all containers can hold one container to its share, so gardend lifts them; what each
/// costs stays charged to the container's own memory cgroup, which bounds it.
/// <list type="bullet">
/// <item><c>fs.pipe-user-pages-soft</c> (16384 pages by default; 0 is none): past it every new pipe of the uid gets two
/// pages (8 KiB) instead of sixteen. With ~80 busy containers a StreamIn's pipe was measured at 8 KiB and took 2-3 times
/// as long; one container growing its own empty pipes to 1 MiB each (F_SETPIPE_SZ, ~10 KiB of kernel memory apiece)
/// reached any share within a second. 1 MiB (fs.pipe-max-size) stays the most a container may grow one pipe to.</item>
/// <item><c>fs.epoll.max_user_watches</c> (about 4% of memory's worth, 5.5 million here; the largest long is none): one
/// container watching one pipe from many epoll instances filled it in ~7 s, and then no process of any container - nor
/// its agent, which serves gardend through epoll - could add a watch (ENOSPC).</item>
/// </list>
/// (Descriptors in flight over SCM_RIGHTS count per uid too, against each sender's RLIMIT_NOFILE, with no sysctl: see
/// the README's user namespaces section.)</summary>
public sealed class SharedUidLimits(string pipeSoft = "/proc/sys/fs/pipe-user-pages-soft", string epollWatches = "/proc/sys/fs/epoll/max_user_watches")
{
    /// <summary>Lifts each; returns the changes ("fs.pipe-user-pages-soft 16384 -> 0 (none)"), none when there were
    /// no limits. A value that is not a number is an error naming the file.</summary>
    public IReadOnlyList<string> Lift()
    {
        var changes = new List<string>();
        if (KernelFloor.Lift(pipeSoft, 0) is { } pipes) changes.Add($"fs.pipe-user-pages-soft {pipes} -> 0 (none)");
        if (KernelFloor.Lift(epollWatches, long.MaxValue) is { } watches) changes.Add($"fs.epoll.max_user_watches {watches} -> {long.MaxValue} (none)");
        return changes;
    }
}
