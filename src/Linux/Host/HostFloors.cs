namespace Garden.Linux.Host;

/// <summary>Host-wide kernel tables every container draws from, which the kernel's defaults size for one machine's own
/// processes rather than for hundreds of containers (found attacking from an ordinary container, bench/FINDINGS-... and
/// the README's containment section):
/// <list type="bullet">
/// <item><c>fs.file-max</c> (2.4 million here): containers may have 1024 processes of 8192 files each by default; one
/// container opening /dev/null from 310 processes filled it in ~4 s, and then every other container's agent stopped
/// answering and no Create could start ("too many open files in system"). Raised to the largest long, as systemd does: a
/// file is kernel memory charged to its container's memory cgroup.</item>
/// <item><c>kernel.pid_max</c> (32768 here): 32 containers at the default pids limit (1024) fill it, and then nothing on
/// the host forks. Raised to the kernel's most, 4194304 (PID_MAX_LIMIT), as systemd does.</item>
/// <item><c>net.netfilter.nf_conntrack_max</c> (262144 here): one container with a NetOut rule filled it at ~8,700 new
/// flows a second, and every new flow through the host was dropped. Each container's chain holds it to its share
/// (FirewallRules.FlowsPerContainer), and the table is raised to fit every container's share and the host's own
/// (an entry is ~320 bytes of kernel memory, taken only while a flow is tracked).</item>
/// </list>
/// Raised, never lowered.</summary>
public sealed class HostFloors(string procSys = "/proc/sys")
{
    public const long FileMax = long.MaxValue;
    public const long PidMax = 4194304;

    /// <summary>Flows of the connection tracking table left to the host beside its containers' shares.</summary>
    public const long ConntrackHeadroom = 65536;

    /// <summary>nf_conntrack_max for <paramref name="containers"/> containers' shares
    /// (<see cref="Network.FirewallRules.FlowsPerContainer"/> each) and the host's own.</summary>
    public static long ConntrackFor(int containers) => ConntrackHeadroom + (long)containers * Network.FirewallRules.FlowsPerContainer;

    /// <summary>Raises each; returns one line per value it changed ("fs.file-max 2466177 -> ..."). The connection tracking
    /// table only where the kernel has it already (it comes with the first firewall rule that tracks).</summary>
    public IReadOnlyList<string> Raise(int containers)
    {
        var changed = new List<string>();
        foreach (var (name, file, needed) in new[]
                 {
                     ("fs.file-max", "fs/file-max", FileMax), ("kernel.pid_max", "kernel/pid_max", PidMax),
                     ("net.netfilter.nf_conntrack_max", "net/netfilter/nf_conntrack_max", ConntrackFor(containers)),
                 })
        {
            var path = Path.Combine(procSys, file);
            if (file.StartsWith("net/", StringComparison.Ordinal) && !File.Exists(path)) continue;
            if (KernelFloor.Raise(path, needed) is { } before) changed.Add($"{name} {before} -> {needed}");
        }
        return changed;
    }
}

/// <summary>gardend's own standing with the kernel's OOM killer (<c>/proc/self/oom_score_adj</c>): containers have no
/// memory limit by default, so when the host runs out the killer chooses among everything, and a container's processes
/// (500, set by the agent) and then its agent (300, its own) must go before gardend, which every container needs.
/// <see cref="Protect"/> lowers gardend's to <see cref="Score"/> (never raises it); lowering needs CAP_SYS_RESOURCE, which
/// some hosts withhold (this test host's bounding set lacks it): gardend then stays at what it was started with (the
/// systemd unit sets OOMScoreAdjust) and the agents' and processes' raised scores keep the order.</summary>
public static class DaemonOomScore
{
    public const int Score = -900;

    /// <summary>This process's oom_score_adj now (what runc, its child, starts with).</summary>
    public static long Current(string file = "/proc/self/oom_score_adj") => KernelFloor.Read(file);

    /// <summary>Lowers this process's oom_score_adj to <see cref="Score"/>; returns the change, or null when it was lower.</summary>
    public static string? Protect(string file = "/proc/self/oom_score_adj")
    {
        var current = KernelFloor.Read(file);
        if (current <= Score) return null;
        File.WriteAllText(file, Score.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return $"oom_score_adj {current} -> {Score}";
    }
}
