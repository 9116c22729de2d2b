namespace Garden.Linux.Cgroups;

/// <summary>The cgroup limits of one container; null = not limited (or: leave as is, in a live change).</summary>
public sealed record ResourceLimits(
    ulong? MemoryBytes = null,     // memory limit; memory+swap is set to the same value so swap cannot dodge it
    ulong? CpuWeight = null,       // relative share: v1 cpu.shares (2..262144), v2 cpu.weight (1..10000, converted)
    double? CpuQuota = null,       // hard cap in CPUs (0.2 = a fifth of one CPU): cpu.cfs_quota_us / cpu.max
    ulong? Pids = null)            // pids.max
{
    public static readonly ResourceLimits None = new();
}

/// <summary>What the kernel reports for a container's cgroup.</summary>
public sealed record CgroupMetrics(
    ulong MemoryUsageBytes,
    ulong? MemoryLimitBytes,
    IReadOnlyDictionary<string, ulong> MemoryStat,   // memory.stat as the kernel lists it
    ulong OomKills,
    ulong CpuUsageNs,
    ulong CpuUserNs,
    ulong CpuSystemNs,
    ulong PidsCurrent,
    ulong? PidsMax);

/// <summary>The kernel refused a limit (the message names the value and the file).</summary>
public sealed class CgroupLimitException(string message, Exception? inner = null) : Exception(message, inner);
