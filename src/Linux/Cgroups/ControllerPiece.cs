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

/// <summary>The version-independent arithmetic of a limit. What a limit may be is the domain's to decide (Garden.Actors'
/// Limits, one set of ranges for every entry); here only what the files cannot take is refused, before anything is
/// written, as a caller's bug.</summary>
internal static class LimitRules
{
    public const ulong UnlimitedMemory = 1UL << 62;   // v1 reports "unlimited" as LONG_MAX rounded down to a page
    public const ulong MinShares = 2, MaxShares = 262144;
    public const long CfsPeriodUs = 100_000, MinCfsQuotaUs = 1000;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for a value no cgroup file of any version can take: a
    /// weight outside cpu.shares' range (the v2 conversion needs it), a quota that is not a positive number of CPUs.</summary>
    public static void Validate(ResourceLimits l)
    {
        if (l.CpuWeight is { } w && (w < MinShares || w > MaxShares))
            throw new ArgumentOutOfRangeException(nameof(l), $"CpuWeight {w} is not a cpu.shares value ({MinShares}..{MaxShares})");
        if (l.CpuQuota is { } q && (!double.IsFinite(q) || q <= 0 || q * CfsPeriodUs > long.MaxValue))
            throw new ArgumentOutOfRangeException(nameof(l), $"CpuQuota {q} is not a positive number of CPUs");
    }

    /// <summary>A fraction of a CPU as CFS quota in µs per <see cref="CfsPeriodUs"/>, at least <see cref="MinCfsQuotaUs"/>.</summary>
    public static long QuotaUs(double cpus) => Math.Max(MinCfsQuotaUs, (long)Math.Round(cpus * CfsPeriodUs));

    /// <summary>The container's memory limit for a limit of <paramref name="bytes"/> on its processes: that plus the agent's
    /// allowance (saturating; the kernel clamps a limit above its maximum to unlimited's page count).</summary>
    public static ulong WithAllowance(ulong bytes, ulong allowance) =>
        bytes > ulong.MaxValue - allowance ? ulong.MaxValue : bytes + allowance;

    /// <summary>Writes a nested pair of limits (the container's around its processes') in the order each write is valid:
    /// growing, the outer first; shrinking, the inner first (each cgroup reclaims under its own limit).</summary>
    public static void OuterAndInner(bool growing, Action outer, Action inner)
    {
        if (growing)
        {
            outer();
            inner();
        }
        else
        {
            inner();
            outer();
        }
    }

    /// <summary>cpu.shares → cgroup2 cpu.weight, as runc converts it.</summary>
    public static ulong SharesToWeight(ulong shares) => 1 + ((shares - 2) * 9999) / 262142;

    /// <summary>cgroup2 cpu.weight → the smallest cpu.shares that converts to it (the mapping is many-to-one).</summary>
    public static ulong WeightToShares(ulong weight) =>
        weight <= 1 ? MinShares : Math.Min(MaxShares, 2 + ((weight - 1) * 262142 + 9998) / 9999);
}
