using System.Collections.Immutable;
using Garden.Linux.Network;
using Garden.Protocol.Journal;
using Google.Protobuf;

namespace Garden.Actors.Host;

/// <summary>The pure state of the host: which handles exist and under which incarnation their journal lives, and what
/// each holds of the pools (its subnet and address, its host ports). Journaled, so a restart never hands out twice.
/// Its fold is here; its decisions (admission, ports, release) are in HostState.Decisions.cs.</summary>
public sealed partial record HostState(
    ImmutableDictionary<string, long> Containers,
    long NextIncarnation,
    ImmutableList<string> Versions,
    ImmutableDictionary<string, NetworkAllocation> Networks,
    ImmutableDictionary<string, ImmutableSortedSet<int>> Ports,
    ImmutableDictionary<string, IdBlock>? IdRanges = null,
    ImmutableDictionary<string, long>? PendingReleases = null,
    ImmutableDictionary<string, bool>? PoolEntries = null,
    ImmutableDictionary<string, string>? RuntimeNames = null)
{
    public static readonly HostState Empty = new(ImmutableDictionary<string, long>.Empty, 1, [],
        ImmutableDictionary<string, NetworkAllocation>.Empty, ImmutableDictionary<string, ImmutableSortedSet<int>>.Empty,
        ImmutableDictionary<string, IdBlock>.Empty);

    /// <summary>The host ids each container holds (per-container user namespaces).</summary>
    public ImmutableDictionary<string, IdBlock> IdBlocks => IdRanges ?? ImmutableDictionary<string, IdBlock>.Empty;

    /// <summary>Handles that are free but whose release still runs (handle → incarnation): what they hold of the pools
    /// (<see cref="Networks"/>, <see cref="Ports"/>, <see cref="IdBlocks"/>, still under the handle) stays taken until
    /// their <see cref="ReleaseFinished"/>.</summary>
    public ImmutableDictionary<string, long> Releasing => PendingReleases ?? ImmutableDictionary<string, long>.Empty;

    /// <summary>The warm pool (garden.warm-pool.size): entry name → ready (made, and a Create may take it). What each
    /// holds of the pools is in <see cref="Networks"/> and <see cref="IdBlocks"/> under its name; it is not one of
    /// <see cref="Containers"/> (a user's).</summary>
    public ImmutableDictionary<string, bool> Pool => PoolEntries ?? ImmutableDictionary<string, bool>.Empty;

    /// <summary>Pool entry name → what it was made as (<see cref="PoolShape"/>): a restart keeps an entry only of the
    /// shape this daemon makes.</summary>
    public ImmutableDictionary<string, string> PoolShapes { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Ready entries a restart found in the journal and has not yet checked in the kernel (its init runs, its
    /// agent answers, its rootfs, cgroup and network are there): no Create takes one until then. Not journaled: every
    /// start checks them again.</summary>
    public ImmutableHashSet<string> PoolUnchecked { get; init; } = ImmutableHashSet<string>.Empty;

    /// <summary>Handle → the name its kernel objects go by, where that is not the handle (a container taken from the pool).</summary>
    public ImmutableDictionary<string, string> Runtimes => RuntimeNames ?? ImmutableDictionary<string, string>.Empty;

    /// <summary>The name a container's (or a pool entry's) runc container, cgroup, depot, mount dir and socket go by.</summary>
    public string RuntimeOf(string handle) => Runtimes.GetValueOrDefault(handle) ?? handle;

    public HostState Apply(IMessage evt) => evt switch
    {
        DaemonStarted d => this with { Versions = Versions.Add(d.Version) },
        ContainerRegistered { RuntimeName.Length: > 0 } r when r.RuntimeName != r.Handle => (this with
        {
            // taken from the warm pool: the entry and what it held become the handle's
            PoolEntries = Pool.Remove(r.RuntimeName), Networks = Networks.Remove(r.RuntimeName), IdRanges = IdBlocks.Remove(r.RuntimeName),
            PoolShapes = PoolShapes.Remove(r.RuntimeName), PoolUnchecked = PoolUnchecked.Remove(r.RuntimeName),
            RuntimeNames = Runtimes.SetItem(r.Handle, r.RuntimeName),
        }).Apply(new ContainerRegistered(r) { RuntimeName = "" }),
        ContainerRegistered r => this with
        {
            Containers = Containers.SetItem(r.Handle, r.Incarnation), NextIncarnation = Math.Max(NextIncarnation, r.Incarnation + 1),
            Networks = r.Network is null ? Networks : Networks.SetItem(r.Handle, FromRecord(r.Network)),
            Ports = r.Ports.Count == 0 ? Ports : Ports.SetItem(r.Handle, [.. r.Ports.Select(p => (int)p)]),
            IdRanges = r.IdRange is null ? IdBlocks : IdBlocks.SetItem(r.Handle, FromRecord(r.IdRange)),
        },
        PoolEntryAdded a => this with
        {
            PoolEntries = Pool.SetItem(a.Name, false), PoolShapes = PoolShapes.SetItem(a.Name, a.Shape), NextIncarnation = Math.Max(NextIncarnation, a.Number + 1),
            Networks = a.Network is null ? Networks : Networks.SetItem(a.Name, FromRecord(a.Network)),
            IdRanges = a.IdRange is null ? IdBlocks : IdBlocks.SetItem(a.Name, FromRecord(a.IdRange)),
        },
        PoolEntryReady r => Pool.ContainsKey(r.Name) ? this with { PoolEntries = Pool.SetItem(r.Name, true) } : this,
        PoolEntryReleased r => this with
        {
            PoolEntries = Pool.Remove(r.Name), PoolShapes = PoolShapes.Remove(r.Name), PoolUnchecked = PoolUnchecked.Remove(r.Name),
            PendingReleases = Releasing.SetItem(r.Name, 0),
        },
        ContainerReleased { Pending: true } r => this with
        {
            Containers = Containers.Remove(r.Handle),
            PendingReleases = Containers.TryGetValue(r.Handle, out var incarnation) ? Releasing.SetItem(r.Handle, incarnation) : Releasing,
        },
        ReleaseFinished f => this with
        {
            PendingReleases = Releasing.Remove(f.Handle), Networks = Networks.Remove(f.Handle), Ports = Ports.Remove(f.Handle),
            IdRanges = IdBlocks.Remove(f.Handle), RuntimeNames = Runtimes.Remove(f.Handle),
        },
        ContainerReleased r => this with
        {
            Containers = Containers.Remove(r.Handle), Networks = Networks.Remove(r.Handle), Ports = Ports.Remove(r.Handle),
            IdRanges = IdBlocks.Remove(r.Handle), RuntimeNames = Runtimes.Remove(r.Handle),
        },
        PortsReserved p => this with { Ports = Ports.SetItem(p.Handle, PortsOf(p.Handle).Union(p.Ports.Select(x => (int)x))) },
        PortsReturned p => this with { Ports = Ports.SetItem(p.Handle, PortsOf(p.Handle).Except(p.Ports.Select(x => (int)x))) },
        RecoveryFinished => this,
        HostSnapshot s => new HostState(s.Containers.ToImmutableDictionary(), s.NextIncarnation, [.. s.Versions],
            s.Networks.ToImmutableDictionary(kv => kv.Key, kv => FromRecord(kv.Value)),
            s.Ports.ToImmutableDictionary(kv => kv.Key, kv => kv.Value.Ports.Select(p => (int)p).ToImmutableSortedSet()),
            s.IdRanges.ToImmutableDictionary(kv => kv.Key, kv => FromRecord(kv.Value)), s.Releasing.ToImmutableDictionary(),
            s.Pool.ToImmutableDictionary(), s.RuntimeNames.ToImmutableDictionary()) { PoolShapes = s.PoolShapes.ToImmutableDictionary() },
        _ => throw new ArgumentOutOfRangeException(nameof(evt), evt.GetType().Name, "unknown host event"),
    };

    public ImmutableSortedSet<int> PortsOf(string handle) => Ports.GetValueOrDefault(handle) ?? [];

    public HostSnapshot ToSnapshot()
    {
        var s = new HostSnapshot { NextIncarnation = NextIncarnation };
        s.Containers.Add(Containers);
        s.Versions.AddRange(Versions);
        foreach (var (h, n) in Networks) s.Networks[h] = ToRecord(n);
        foreach (var (h, p) in Ports)
        {
            var list = new PortList();
            list.Ports.AddRange(p.Select(x => (uint)x));
            s.Ports[h] = list;
        }
        foreach (var (h, b) in IdBlocks) s.IdRanges[h] = ToRecord(b);
        s.Releasing.Add(Releasing);
        s.Pool.Add(Pool);
        s.PoolShapes.Add(PoolShapes);
        s.RuntimeNames.Add(Runtimes);
        return s;
    }

    public static IdRangeRecord ToRecord(IdBlock b) => new() { HostStart = b.HostStart, Size = b.Size };

    public static IdBlock FromRecord(IdRangeRecord r) => new(r.HostStart, r.Size);

    public static NetworkRecord ToRecord(NetworkAllocation n) => new() { Subnet = n.Subnet.ToString(), Address = n.Address.ToString() };

    public static NetworkAllocation FromRecord(NetworkRecord r) =>
        new(Ipv4Cidr.Parse(r.Subnet, "subnet").Subnet, Ipv4.Parse(r.Address, "address"));

    public static string PersistenceIdOf(string handle, long incarnation) => $"container-{handle}-{incarnation}";
}

/// <summary>Host ids [HostStart, HostStart + Size) held by one container: its uids and gids alike.</summary>
public readonly record struct IdBlock(uint HostStart, uint Size)
{
    public bool Overlaps(IdBlock o) => (ulong)HostStart < (ulong)o.HostStart + o.Size && (ulong)o.HostStart < (ulong)HostStart + Size;
    public override string ToString() => $"{HostStart}-{(ulong)HostStart + Size - 1}";
}
