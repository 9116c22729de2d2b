namespace Garden.Linux.Host;

/// <summary>The kernel's limit on pseudo-terminals (<c>/proc/sys/kernel/pty/max</c>, 4096 by default). Every container
/// mounts a devpts instance of its own, but the kernel counts the ptys of all instances but the host's first against one
/// limit, <c>max</c> less <c>reserve</c> (1024 kept for the host's own): 3072 shared by every container, so one container
/// opening /dev/ptmx 3072 times left no other container a tty. Each container's devpts now holds at most
/// <see cref="PerContainer"/> (its <c>max=</c> mount option, OciBundle), and gardend raises <c>kernel.pty.max</c> so that
/// every container's share fits beside the host's reserve. Raised, never lowered.</summary>
public sealed class PtyQuota(string directory = "/proc/sys/kernel/pty")
{
    /// <summary>The ptys one container's devpts may hold (interactive Runs, sshd sessions, script(1) and the like).</summary>
    public const int PerContainer = 1024;

    /// <summary>The most the kernel takes for kernel.pty.max (NR_UNIX98_PTY_MAX).</summary>
    public const long KernelMost = 1 << 20;

    /// <summary>kernel.pty.max for <paramref name="containers"/> containers' shares beside <paramref name="reserve"/>.</summary>
    public static long Needed(int containers, long reserve) => Math.Min(KernelMost, reserve + (long)containers * PerContainer);

    /// <summary>Raises kernel.pty.max to what <paramref name="containers"/> containers need; returns the change
    /// ("kernel.pty.max 4096 -> 263168"), or null when it was high enough.</summary>
    public string? EnsureFor(int containers)
    {
        var needed = Needed(containers, KernelFloor.Read(Path.Combine(directory, "reserve")));
        return KernelFloor.Raise(Path.Combine(directory, "max"), needed) is { } before ? $"kernel.pty.max {before} -> {needed}" : null;
    }
}
