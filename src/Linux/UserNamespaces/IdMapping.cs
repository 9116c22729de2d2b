using System.Collections.Immutable;

namespace Garden.Linux.UserNamespaces;

/// <summary>One line of /proc/PID/uid_map or gid_map: <see cref="Size"/> ids from <see cref="ContainerId"/> in the
/// container are <see cref="HostId"/>... on the host.</summary>
public readonly record struct IdRange(uint ContainerId, uint HostId, uint Size)
{
    public override string ToString() => $"{ContainerId} {HostId} {Size}";
}

/// <summary>A container's user namespace: how its uids and gids map to the host's. Container root is host
/// <see cref="RootUid"/>:<see cref="RootGid"/>, an unprivileged id on the host.</summary>
public sealed record IdMapping(ImmutableArray<IdRange> Uids, ImmutableArray<IdRange> Gids)
{
    /// <summary>The host's 4294967294 (-2): Garden's container root, never a real user of the host.</summary>
    public const uint GardenRootId = 4294967294;

    /// <summary>How many ids a per-container mapping holds (container ids 0..65535).</summary>
    public const uint PerContainerSize = 65536;

    private static readonly ImmutableArray<IdRange> GardenRanges = [new(0, GardenRootId, 1), new(1, 1, GardenRootId - 1)];

    /// <summary>Garden's mapping: container root is the host's 4294967294, every other id is the same id on the host
    /// (uid_map reads "0 4294967294 1" and "1 1 4294967293").</summary>
    public static readonly IdMapping Garden = new(GardenRanges, GardenRanges);

    /// <summary>A range of its own: container ids 0..65535 are host ids <paramref name="hostStart"/>.. (uids and gids alike).</summary>
    public static IdMapping PerContainer(uint hostStart)
    {
        ImmutableArray<IdRange> r = [new(0, hostStart, PerContainerSize)];
        return new IdMapping(r, r);
    }

    public uint RootUid => HostIdOf(Uids, 0) ?? throw new InvalidOperationException("container root is not mapped");
    public uint RootGid => HostIdOf(Gids, 0) ?? throw new InvalidOperationException("container root's group is not mapped");

    /// <summary>The host id of container id <paramref name="id"/>, or null when it is not mapped.</summary>
    public static uint? HostIdOf(ImmutableArray<IdRange> ranges, uint id)
    {
        foreach (var r in ranges)
            if (id >= r.ContainerId && id - r.ContainerId < r.Size) return r.HostId + (id - r.ContainerId);
        return null;
    }

    /// <summary>The text the kernel takes in /proc/PID/uid_map (written in one write).</summary>
    public static string ProcFormat(ImmutableArray<IdRange> ranges) => string.Concat(ranges.Select(r => $"{r}\n"));

    /// <summary>"0 4294967294 1, 1 1 4294967293" (uid and gid maps alike), else both maps.</summary>
    public override string ToString() => Uids.SequenceEqual(Gids)
        ? string.Join(", ", Uids)
        : $"uid {string.Join(", ", Uids)}; gid {string.Join(", ", Gids)}";

    public bool Equals(IdMapping? other) => other is not null && Uids.SequenceEqual(other.Uids) && Gids.SequenceEqual(other.Gids);

    public override int GetHashCode() => HashCode.Combine(Uids.Length, Uids.FirstOrDefault(), Gids.FirstOrDefault());
}
