namespace Garden.Actors;

/// <summary>The one definition of what a limit may be, at create, in a live change and in garden.default-limits. (The
/// cgroup layer checks only what its own arithmetic needs: it trusts these ranges.)</summary>
public sealed partial record Limits
{
    public const ulong MinMemory = 4UL << 20, MaxMemory = 64UL << 40;
    public const ulong MinDisk = 8UL << 20, MaxDisk = 64UL << 40;   // MinDisk: LoopDiskQuota.MinimumBytes
    public const ulong MaxPids = 4_194_304;
    public const ulong MinCpuWeight = 2, MaxCpuWeight = 262_144;
    public const double MaxCpuQuota = 1024;
    public const ulong MinBandwidth = 1024, MaxBandwidth = 100UL << 30;

    /// <summary>The first value out of range, as an error naming the field and the value; null when all are fine.</summary>
    public GardenException? Problem()
    {
        // a whole number of GiB or MiB as such, anything else in bytes as sent (2^64-1 reads 18446744073709551615, not a rounded size)
        static string Size(ulong b) => b >= 1UL << 30 && b % (1UL << 30) == 0 ? $"{b >> 30} GiB"
            : b >= 1UL << 20 && b % (1UL << 20) == 0 ? $"{b >> 20} MiB" : $"{b} bytes";
        if (MemoryBytes is { } m && (m < MinMemory || m > MaxMemory))
            return GardenException.Invalid("memory", $"{Size(m)} is out of range ({Size(MinMemory)} to {Size(MaxMemory)}: a container needs a few MiB to start)");
        if (DiskBytes is { } d && (d < MinDisk || d > MaxDisk))
            return GardenException.Invalid("disk", $"{Size(d)} is out of range ({Size(MinDisk)} to {Size(MaxDisk)})");
        if (Pids is { } p && (p < 1 || p > MaxPids))
            return GardenException.Invalid("pids", $"{p} is out of range (1 to {MaxPids})");
        if (CpuWeight is { } w && (w < MinCpuWeight || w > MaxCpuWeight))
            return GardenException.Invalid("cpu weight", $"{w} is out of range ({MinCpuWeight} to {MaxCpuWeight})");
        if (CpuQuota is { } q && (!double.IsFinite(q) || q <= 0 || q > MaxCpuQuota))
            return GardenException.Invalid("cpu quota", $"{q} is out of range (more than 0, at most {MaxCpuQuota} CPUs)");
        if (BandwidthRate is { } r && (r < MinBandwidth || r > MaxBandwidth))
            return GardenException.Invalid("bandwidth", $"a rate of {r} bytes/s is out of range ({MinBandwidth} bytes/s to {Size(MaxBandwidth)}/s)");
        if (BandwidthBurst is { } b && BandwidthRate is null)
            return GardenException.Invalid("bandwidth", $"a burst ({b} bytes) needs a rate");
        if (BandwidthBurst is { } b2 && (b2 < 2048 || b2 > 1UL << 30))
            return GardenException.Invalid("bandwidth", $"a burst of {b2} bytes is out of range (2048 bytes to 1 GiB)");
        return null;
    }
}
