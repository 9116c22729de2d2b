using System.Collections.Immutable;
using Garden.Linux.Network;
using Garden.Linux.UserNamespaces;

namespace Garden.Actors;

public sealed record ContainerSpec(
    string Handle,
    string Rootfs,
    ImmutableArray<string> Env,
    ImmutableDictionary<string, string> Properties,
    bool Privileged,
    Limits? Limits = null,
    string NetworkRequest = "",
    NetworkAllocation? Network = null,
    ImmutableArray<PortMapping> NetIn = default,
    ImmutableArray<NetOutRule> NetOut = default,
    ImmutableArray<BindMount> BindMounts = default,
    TimeSpan? GraceTime = null,
    IdMapping? UserNamespace = null)
{
    /// <summary>Made by a build before user namespaces and not privileged: it runs as host root all the same (it was
    /// made so), until destroyed.</summary>
    public bool EarlierHostRoot => !Privileged && UserNamespace is null;

    public Limits LimitsOrNone => Limits ?? Garden.Actors.Limits.None;
    public ImmutableArray<BindMount> BindMountsOrEmpty => BindMounts.IsDefault ? [] : BindMounts;
    public ImmutableArray<PortMapping> NetInOrEmpty => NetIn.IsDefault ? [] : NetIn;
    public ImmutableArray<NetOutRule> NetOutOrEmpty => NetOut.IsDefault ? [] : NetOut;
}

/// <summary>A host path mounted into the container at create (read-only unless asked otherwise by the caller). Checked by
/// <see cref="Problem"/> (Validation/BindMounts.cs).</summary>
public sealed partial record BindMount(string Source, string Destination, bool ReadOnly)
{
    /// <summary>The destination with "..", "." and repeated slashes resolved (lexically: it names a path in the container).</summary>
    public string NormalDestination => Path.GetFullPath(Destination);
}

/// <summary>A container's place on the network, given by the host's pool: its subnet (the gateway is the first address)
/// and its address.</summary>
public sealed record NetworkAllocation(Ipv4Cidr Subnet, Ipv4 Address)
{
    public Ipv4 Gateway => Subnet.Gateway;
    public override string ToString() => $"{Address} in {Subnet}";
}

/// <summary>A container's resource limits; null = not limited (in a live change: leave as is). Their ranges:
/// <see cref="Problem"/> (Validation/Limits.cs).</summary>
public sealed partial record Limits(ulong? MemoryBytes = null, ulong? CpuWeight = null, double? CpuQuota = null, ulong? Pids = null, ulong? DiskBytes = null,
    ulong? BandwidthRate = null, ulong? BandwidthBurst = null, DiskScope? DiskScope = null)
{
    /// <summary>The room the container's own disk gets for a disk limit of <paramref name="disk"/>: all of it (exclusive),
    /// or what is left once its image (<paramref name="imageBytes"/>, the base rootfs) is taken off (total). A total limit
    /// that leaves less than <see cref="MinDisk"/> is InvalidArgument naming the field.</summary>
    public ulong DiskRoom(ulong disk, ulong imageBytes)
    {
        if (DiskScope != Garden.Actors.DiskScope.Total) return disk;
        if (disk < imageBytes || disk - imageBytes < MinDisk)
            throw GardenException.Invalid("disk", $"a total-scope limit of {disk} bytes leaves {(disk < imageBytes ? 0 : disk - imageBytes)} bytes " +
                $"once the image (the base rootfs, {imageBytes} bytes) is counted; the container's own disk needs at least {MinDisk} bytes " +
                $"(ask for at least {imageBytes + MinDisk}, or an exclusive scope)");
        return disk - imageBytes;
    }

    public static readonly Limits None = new();

    public bool IsEmpty => this == None;

    /// <summary>These limits with every field <paramref name="change"/> sets replaced.</summary>
    public Limits With(Limits change) => new(change.MemoryBytes ?? MemoryBytes, change.CpuWeight ?? CpuWeight,
        change.CpuQuota ?? CpuQuota, change.Pids ?? Pids, change.DiskBytes ?? DiskBytes,
        change.BandwidthRate ?? BandwidthRate, change.BandwidthRate is null ? BandwidthBurst : change.BandwidthBurst,
        change.DiskScope ?? DiskScope);

    /// <summary>The bandwidth limit for the kernel (a burst of an eighth of a second's worth, at least 64 KiB, when none
    /// was asked for), or null when not limited.</summary>
    public Bandwidth? ToBandwidth() => BandwidthRate is { } rate
        ? new Bandwidth(rate, BandwidthBurst ?? Math.Max(rate / 8, 64UL << 10))
        : null;

    public Garden.Linux.Cgroups.ResourceLimits ToCgroup() => new(MemoryBytes, CpuWeight, CpuQuota, Pids);
}

/// <summary>What a disk limit covers (Garden's DiskLimitScope): only what the container writes (exclusive, the default
/// here), or that and its image, the base rootfs (total, Garden's default).</summary>
public enum DiskScope { Exclusive = 0, Total = 1 }

public sealed record RlimitSpec(string Name, ulong Soft, ulong Hard);

/// <summary>A terminal's size (a resize is checked by <see cref="Problem"/>, Validation/Processes.cs).</summary>
public sealed partial record TtySize(uint Rows, uint Cols);

/// <summary>A process to run (checked by <see cref="Problem"/>, Validation/Processes.cs).</summary>
public sealed partial record ProcessSpec(
    string Id,
    string Path,
    ImmutableArray<string> Args,
    ImmutableArray<string> Env,
    string Dir,
    string User,
    ImmutableArray<RlimitSpec> Rlimits,
    TtySize? Tty,
    string Image = "",
    PeaLimits? PeaLimits = null)
{
    /// <summary>A pea: a process with a root filesystem of its own (see <c>Kernel/PeaKernel</c>).</summary>
    public bool IsPea => Image.Length > 0;
}

/// <summary>A pea's own limits (0 = none), in a cgroup of its own inside its container's; null on a pea = it shares
/// its container's.</summary>
public sealed record PeaLimits(ulong MemoryBytes, ulong CpuWeight, ulong Pids);

public enum ContainerLifecycle { Creating, Active, Stopping, Stopped, Destroying, Destroyed, Broken }
