namespace Garden.Linux.Cgroups;

/// <summary>Which fields of <see cref="ResourceLimits"/> a controller piece writes.</summary>
[Flags]
internal enum LimitFields
{
    None = 0,
    Memory = 1,
    CpuWeight = 2,
    CpuQuota = 4,
    Pids = 8,
}

/// <summary>One controller's files of a container's cgroup: v1 has one piece per controller hierarchy
/// (<c>&lt;root&gt;/memory/&lt;parent&gt;/&lt;handle&gt;</c>), v2 one piece per controller file set in the single tree.</summary>
internal abstract class ControllerPiece(string hierarchy, string parent)
{
    /// <summary>The limits this piece writes (a limit no piece owns is refused: its controller is not mounted).</summary>
    public abstract LimitFields Owns { get; }

    public string Dir(string handle) => Path.Combine(hierarchy, parent, handle);

    protected string FileOf(string handle, string name) => Path.Combine(hierarchy, parent, handle, name);

    /// <summary>Writes this piece's non-null fields through <paramref name="w"/> (which can undo them).</summary>
    public abstract void Apply(string handle, ResourceLimits limits, LimitWriter w);

    /// <summary>Returns <paramref name="soFar"/> with this piece's fields as the kernel holds them.</summary>
    public abstract ResourceLimits Read(string handle, ResourceLimits soFar);

    public abstract void Metrics(string handle, MetricsBuilder m);
}

/// <summary>The version-independent rules of a limit: checked before anything is written.</summary>
internal static class LimitRules
{
    public const ulong MinMemory = 1UL << 20;         // 1 MiB: below this nothing starts
    public const ulong MaxMemory = 1UL << 60;         // 1 EiB: anything above is a mistake
    public const ulong UnlimitedMemory = 1UL << 62;   // v1 reports "unlimited" as LONG_MAX rounded down to a page
    public const ulong MinShares = 2, MaxShares = 262144;
    public const double MaxQuota = 1024;              // CPUs
    public const ulong MaxPids = 4194304;             // PID_MAX_LIMIT
    public const long CfsPeriodUs = 100_000, MinCfsQuotaUs = 1000;

    public static void Validate(ResourceLimits l)
    {
        if (l.MemoryBytes is { } m && (m < MinMemory || m > MaxMemory))
            throw new CgroupLimitException($"MemoryBytes {m} is out of range ({MinMemory}..{MaxMemory})");
        if (l.CpuWeight is { } w && (w < MinShares || w > MaxShares))
            throw new CgroupLimitException($"CpuWeight {w} is out of range ({MinShares}..{MaxShares}, in cpu.shares units)");
        if (l.CpuQuota is { } q && (double.IsNaN(q) || q <= 0 || q > MaxQuota))
            throw new CgroupLimitException($"CpuQuota {q} is out of range (>0..{MaxQuota} CPUs)");
        if (l.Pids is { } p && (p < 1 || p > MaxPids))
            throw new CgroupLimitException($"Pids {p} is out of range (1..{MaxPids})");
    }

    /// <summary>A fraction of a CPU as CFS quota in µs per <see cref="CfsPeriodUs"/>, at least <see cref="MinCfsQuotaUs"/>.</summary>
    public static long QuotaUs(double cpus) => Math.Max(MinCfsQuotaUs, (long)Math.Round(cpus * CfsPeriodUs));

    /// <summary>cpu.shares → cgroup2 cpu.weight, as runc converts it.</summary>
    public static ulong SharesToWeight(ulong shares) => 1 + ((shares - 2) * 9999) / 262142;

    /// <summary>cgroup2 cpu.weight → the smallest cpu.shares that converts to it (the mapping is many-to-one).</summary>
    public static ulong WeightToShares(ulong weight) =>
        weight <= 1 ? MinShares : Math.Min(MaxShares, 2 + ((weight - 1) * 262142 + 9998) / 9999);
}
