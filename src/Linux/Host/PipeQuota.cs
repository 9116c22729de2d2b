namespace Garden.Linux.Host;

/// <summary>The kernel's soft limit on the pipe buffers of one user (<c>/proc/sys/fs/pipe-user-pages-soft</c>, pages per
/// host uid; the kernel's default is 16384, 64 MiB). Past it, every new pipe of that user gets two pages (8 KiB) instead of
/// sixteen, and cannot be grown. With Garden's mapping every unprivileged container's root is the one host uid 4294967294,
/// so the pipes of all containers (each process's stdin, stdout and stderr, the 256 KiB pipe of a StreamIn, a user's own
/// pipelines) count against one limit: with ~80 busy containers on a host, a StreamIn's pipe was measured at 8 KiB and took
/// 2-3 times as long, whatever container it was for. Raised to a share per container (never lowered); a container's pipe
/// buffers are still charged to its memory cgroup, so its memory limit bounds what it can pin.</summary>
public sealed class PipeQuota(string file = "/proc/sys/fs/pipe-user-pages-soft")
{
    /// <summary>Pages left to the uid beyond its containers' share (the kernel's own default).</summary>
    public const long Headroom = 16384;

    /// <summary>One container's share: 1 MiB of pipe buffers, sixteen pipes of the default 64 KiB (a process's three, a
    /// stream's 256 KiB, the user's own).</summary>
    public const long PagesPerContainer = 256;

    /// <summary>The soft limit <paramref name="containers"/> containers of one uid need.</summary>
    public static long Needed(int containers) => Headroom + containers * PagesPerContainer;

    /// <summary>Raises the soft limit to what <paramref name="containers"/> containers need; returns the change
    /// ("fs.pipe-user-pages-soft 16384 -> 81920"), or null when it was high enough.</summary>
    public string? EnsureFor(int containers)
    {
        var needed = Needed(containers);
        if (KernelFloor.Raise(file, needed) is not { } current) return null;
        return $"fs.pipe-user-pages-soft {current} -> {needed}";
    }
}
