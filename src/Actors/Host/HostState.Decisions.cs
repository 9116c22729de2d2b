using System.Collections.Immutable;
using Garden.Linux.Network;
using Garden.Linux.UserNamespaces;
using Garden.Protocol.Journal;

namespace Garden.Actors.Host;

/// <summary>A Create the host admitted: the spec the container is made from (handle, rootfs, limits, grace time, bind
/// mounts resolved, network and user namespace taken from the pools), and the record that registers it.</summary>
public sealed record Admission(ContainerSpec Spec, ContainerRegistered Registered)
{
    /// <summary>The warm pool entry the Create takes (its runtime name), or null: made the normal way.</summary>
    public string? PoolEntry => Registered.RuntimeName.Length > 0 ? Registered.RuntimeName : null;
}

/// <summary>A NetIn the host admitted: the mapping the container is to apply, and the record that reserves its host port.</summary>
public sealed record NetInReservation(string Handle, PortMapping Mapping, PortsReserved Reserved);

/// <summary>The host's decisions: pure functions of the state, a request, the settings and what the host machine said
/// (<see cref="HostFacts"/>, gathered before: where paths lead, which ports are bound). Each returns the records to
/// journal, or throws the <see cref="GardenException"/> the client gets. The actor runs them one at a time, and journals
/// what they return.</summary>
public sealed partial record HostState
{
    /// <summary>Most containers at once: the configured maximum, and no more than the subnet pool holds. (A per-container
    /// user id pool limits unprivileged containers only: its own error says when it is empty.)</summary>
    public static int MaxContainers(GardenSettings settings) =>
        settings.Network.Enabled ? Math.Min(settings.MaxContainers, settings.Network.PoolCapacity) : settings.MaxContainers;

    /// <summary>Admits a Create: checks every field (<c>Validation/</c>), fills in the defaults, checks the handle is free
    /// and there is room, and takes a network, host ports and a user id range from the pools.</summary>
    public Admission Admit(ContainerSpec request, GardenSettings settings, HostFacts host)
    {
        var spec = request;
        if (spec.Handle.Length == 0) spec = spec with { Handle = Names.Generate() };
        Names.Validate("handle", spec.Handle);
        if (spec.Rootfs.Length == 0) spec = spec with { Rootfs = settings.DefaultRootfs };
        if (Garden.Linux.Images.ImageReference.IsImage(spec.Rootfs))
        {
            try { Garden.Linux.Images.ImageReference.Parse(spec.Rootfs); }
            catch (Garden.Linux.Images.ImageException e) { throw GardenException.Invalid("image", e.Message); }
        }
        else if (host.ResolvePath(spec.Rootfs) is { } rootfs)   // one that does not exist fails with the rootfs step, naming it
            Throw(RootDirectory.Problem("rootfs", spec.Rootfs, rootfs, settings.ResolvedHostOnlyPaths(host.ResolvePath)));
        Throw(EnvEntries.Problem(spec.Env) ?? ExecArgs.Problem([], spec.Env));
        Throw(spec.LimitsOrNone.Problem());
        spec = spec with
        {
            Limits = settings.DefaultLimits.With(spec.LimitsOrNone), // garden.default-limits, where it names none
            BindMounts = ResolvedBindMounts(spec.BindMountsOrEmpty, settings, host),
            GraceTime = spec.GraceTime ?? settings.DefaultGraceTime,
        };
        Throw(GraceTime.Problem(spec.GraceTime.Value));
        if (Containers.ContainsKey(spec.Handle))
            throw new GardenException(ErrorKind.AlreadyExists, $"Handle '{spec.Handle}' already in use");
        // (the host holds a Create of a handle whose release still runs until it finished: its paths are the handle's)
        if (Releasing.ContainsKey(spec.Handle))
            throw new GardenException(ErrorKind.Unavailable, $"Handle '{spec.Handle}' is still being released; try again");
        var max = MaxContainers(settings);
        if (Containers.Count >= max)
            throw new GardenException(ErrorKind.ResourceExhausted, max < settings.MaxContainers
                ? $"max containers reached ({max}, what the subnet pool {settings.Network.Pool} holds); destroy one or configure a larger garden.network.pool"
                : $"max containers reached ({max}); destroy one or raise garden.max-containers");
        if (settings.WarmPoolSize > 0 && PoolProblem(spec, settings) is null && ReadyPoolEntry() is { } entry)
            return Take(spec, entry, settings, host);
        IdMapping? mapping;
        IdBlock? block;
        try
        {
            spec = WithNetwork(spec, settings.Network, host);
            (mapping, block) = new UserIdPool(settings.UserNamespace).Allocate(this, spec.Privileged);
        }
        catch (GardenException e) when (e.Kind == ErrorKind.ResourceExhausted && Pool.Count > 0)
        {
            // the warm pool holds what this Create needs: the host gives an entry back (PoolGivesWay)
            throw new GardenException(ErrorKind.Unavailable, $"{e.Message}; the warm pool is giving back what it holds, try again",
                new PoolHoldsRoom());
        }
        spec = spec with { UserNamespace = mapping };

        var registered = new ContainerRegistered { Handle = spec.Handle, Incarnation = NextIncarnation };
        if (spec.Network is not null) registered.Network = ToRecord(spec.Network);
        registered.Ports.AddRange(spec.NetInOrEmpty.Select(m => (uint)m.HostPort));
        if (block is { } b) registered.IdRange = ToRecord(b);
        return new Admission(spec, registered);
    }

    // ---- the warm pool ----

    /// <summary>The name of pool entry <paramref name="number"/>: never a valid handle (a handle starts with a letter or
    /// digit), never an actor name of an invalid one (those start with "_%"), and path-, runc- and cgroup-safe.</summary>
    public static string PoolName(long number) => $"_pool-{number}";

    public static bool IsPoolName(string name) =>
        name.StartsWith("_pool-", StringComparison.Ordinal) && long.TryParse(name.AsSpan(6), System.Globalization.NumberStyles.None, null, out _);

    /// <summary>Why a Create (as admitted so far: defaults filled in) cannot be served from the warm pool, or null when
    /// it can. The pool holds containers of one shape: the default rootfs, unprivileged, the default network (a /30 of
    /// the pool) or none when networking is off, no bind mounts, no disk limit, no bandwidth limit. What differs per
    /// Create and is applied on take: the handle (hostname, /etc/hosts), properties, grace time, env, memory/cpu/pids limits,
    /// NetIn and NetOut rules. (A process never inherits the agent's environment, which is what the bundle's env sets: each
    /// Run is given the container's env merged with its own, and the agent execs it with exactly that; so an entry made
    /// with none serves a Create with any.)</summary>
    public static string? PoolProblem(ContainerSpec spec, GardenSettings settings)
    {
        if (spec.Rootfs != settings.DefaultRootfs) return "not the default rootfs";
        if (spec.Privileged) return "privileged";
        if (spec.NetworkRequest.Length > 0) return "asks for a network of its own";
        if (!spec.BindMountsOrEmpty.IsEmpty) return "has bind mounts";
        if (spec.LimitsOrNone.DiskBytes is not null) return "has a disk limit";
        if (spec.LimitsOrNone.BandwidthRate is not null) return "has a bandwidth limit";
        if (!settings.Network.Enabled && (!spec.NetInOrEmpty.IsEmpty || !spec.NetOutOrEmpty.IsEmpty)) return "asks for net-in/net-out without networking";
        return null;
    }

    /// <summary>The ready entry a Create takes: the oldest.</summary>
    public string? ReadyPoolEntry() =>
        Pool.Where(kv => kv.Value && !PoolUnchecked.Contains(kv.Key)).Select(kv => kv.Key).OrderBy(n => n.Length).ThenBy(n => n, StringComparer.Ordinal).FirstOrDefault();

    /// <summary>A Create served by a ready pool entry: the entry's network and user id range become the container's,
    /// the NetIn host ports are taken as for any Create; one record registers it and takes the entry.</summary>
    private Admission Take(ContainerSpec spec, string entry, GardenSettings settings, HostFacts host)
    {
        var network = Networks.GetValueOrDefault(entry);
        var netIn = spec.NetInOrEmpty;
        if (network is not null)
        {
            foreach (var m in netIn) Throw(NetworkRequests.ContainerPortProblem(m.ContainerPort));
            Throw(NetworkRequests.RulesProblem(spec.NetOutOrEmpty, "net-out"));
            var ports = new NetworkPool(settings.Network).TakePorts(this, netIn.Select(m => m.HostPort), host.TcpPortInUse);
            netIn = [.. netIn.Select((m, i) => m with { HostPort = ports[i] })];
        }
        var block = IdBlocks.TryGetValue(entry, out var b) ? b : (IdBlock?)null;
        spec = spec with
        {
            Network = network, NetIn = netIn,
            UserNamespace = block is { } held ? IdMapping.PerContainer(held.HostStart) : IdMapping.Garden,
        };
        var registered = new ContainerRegistered { Handle = spec.Handle, Incarnation = NextIncarnation, RuntimeName = entry };
        if (network is not null) registered.Network = ToRecord(network);
        registered.Ports.AddRange(netIn.Select(m => (uint)m.HostPort));
        if (block is { } taken) registered.IdRange = ToRecord(taken);
        return new Admission(spec, registered);
    }

    /// <summary>The next entry to make, or null when the pool is full (garden.warm-pool.size) or there is no room: the pool
    /// never holds what would leave fewer than one free place under max-containers, nor takes what the pools have not.</summary>
    public PoolEntryAdded? PlanPoolEntry(GardenSettings settings)
    {
        if (Pool.Count >= settings.WarmPoolSize) return null;
        if (Containers.Count + Pool.Count + 1 >= MaxContainers(settings)) return null;
        try
        {
            var added = new PoolEntryAdded { Name = PoolName(NextIncarnation), Number = NextIncarnation, Shape = PoolShape(settings) };
            if (settings.Network.Enabled) added.Network = ToRecord(new NetworkPool(settings.Network).Allocate(this, ""));
            var (_, block) = new UserIdPool(settings.UserNamespace).Allocate(this, privileged: false);
            if (block is { } b) added.IdRange = ToRecord(b);
            return added;
        }
        catch (GardenException e) when (e.Kind == ErrorKind.ResourceExhausted)
        {
            return null;
        }
    }

    /// <summary>What a pool entry is made as, beside its name, network and ids: this daemon's version (its agent), the
    /// default rootfs, the agent binary, whether it has a network and its MTU and name servers, the user id mapping. An
    /// entry an earlier gardend made of another shape is released at the start, not handed out.</summary>
    public static string PoolShape(GardenSettings settings) => string.Join(';',
        typeof(HostState).Assembly.GetName().Version?.ToString(3) ?? "0.0.0", settings.DefaultRootfs, settings.AgentBinary,
        settings.Network.Enabled ? $"net mtu {settings.Network.Mtu} dns {string.Join(',', settings.Network.DnsServers)}" : "no net",
        settings.UserNamespace.Mapping);

    /// <summary>What a restart does with the pool an earlier gardend left: entries of this daemon's shape that were made
    /// (up to garden.warm-pool.size) are kept, unchecked until the kernel says they are whole (<see cref="PoolUnchecked"/>);
    /// the rest (half made, of another shape, beyond the size) are to be released. Returns the state and those to release.</summary>
    public (HostState State, IReadOnlyList<string> Release) KeepPool(GardenSettings settings)
    {
        var shape = PoolShape(settings);
        var keep = Pool.Where(e => e.Value && PoolShapes.GetValueOrDefault(e.Key) == shape)
            .Select(e => e.Key).OrderBy(n => n.Length).ThenBy(n => n, StringComparer.Ordinal).Take(settings.WarmPoolSize).ToImmutableHashSet();
        var release = Pool.Keys.Where(n => !keep.Contains(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        return (this with { PoolUnchecked = keep }, release);
    }

    /// <summary>The kernel says a kept entry is whole: a Create may take it.</summary>
    public HostState PoolEntryChecked(string name) => this with { PoolUnchecked = PoolUnchecked.Remove(name) };

    /// <summary>The spec a pool entry is made with: the default shape, named by the entry (its hostname until taken).</summary>
    public ContainerSpec PoolEntrySpec(string name, GardenSettings settings)
    {
        var block = IdBlocks.TryGetValue(name, out var b) ? b : (IdBlock?)null;
        return new ContainerSpec(name, settings.DefaultRootfs, [], ImmutableDictionary<string, string>.Empty, Privileged: false,
            Limits: Garden.Actors.Limits.None, Network: Networks.GetValueOrDefault(name),
            UserNamespace: block is { } held ? IdMapping.PerContainer(held.HostStart) : IdMapping.Garden);
    }

    /// <summary>The record that gives an untaken entry back (its release then runs under its name), or null.</summary>
    public PoolEntryReleased? ReleasePoolEntry(string name) => Pool.ContainsKey(name) ? new PoolEntryReleased { Name = name } : null;

    /// <summary>Admits a NetIn of a container with a network: a free host port (0 = one from the pool) for the container
    /// port. The port is journaled as reserved before the container applies it, and returned (<see cref="ReturnPort"/>)
    /// if the container cannot.</summary>
    public NetInReservation ReserveNetIn(string handle, int hostPort, int containerPort, NetworkSettings network, HostFacts host)
    {
        if (!Containers.ContainsKey(handle)) throw GardenException.UnknownHandle(handle);
        if (!Networks.ContainsKey(handle)) throw new GardenException(ErrorKind.FailedPrecondition, $"container {handle} has no network");
        Throw(NetworkRequests.ContainerPortProblem(containerPort));
        var port = new NetworkPool(network).TakePorts(this, [hostPort], host.TcpPortInUse)[0];
        var reserved = new PortsReserved { Handle = handle };
        reserved.Ports.Add((uint)port);
        return new NetInReservation(handle, new PortMapping(port, containerPort), reserved);
    }

    /// <summary>The record that gives a reserved host port back (a NetIn the container refused), or null when the
    /// container is gone (its release gave back all its ports).</summary>
    public PortsReturned? ReturnPort(string handle, int port)
    {
        if (!Containers.ContainsKey(handle) || !PortsOf(handle).Contains(port)) return null;
        var returned = new PortsReturned { Handle = handle };
        returned.Ports.Add((uint)port);
        return returned;
    }

    /// <summary>The record that frees a handle, or null when it is not registered. The container is gone but what it
    /// made may be left (a Destroy answers once nothing runs in it): its release is pending, and what it holds of the
    /// pools stays taken until <see cref="ReleaseDone"/>.</summary>
    public ContainerReleased? Release(string handle) =>
        Containers.ContainsKey(handle) ? new ContainerReleased { Handle = handle, Pending = true } : null;

    /// <summary>The record that ends the pending release of a handle and returns what it held to the pools, or null when
    /// none is pending.</summary>
    public ReleaseFinished? ReleaseDone(string handle) =>
        Releasing.ContainsKey(handle) ? new ReleaseFinished { Handle = handle } : null;

    private static void Throw(GardenException? problem)
    {
        if (problem is not null) throw problem;
    }

    /// <summary>The bind mounts, checked (<see cref="BindMount.Problem"/>), each source resolved to the path that was
    /// checked, which is the one mounted.</summary>
    private static ImmutableArray<BindMount> ResolvedBindMounts(ImmutableArray<BindMount> mounts, GardenSettings settings, HostFacts host)
    {
        if (mounts.IsEmpty) return mounts;
        var hostOnly = settings.ResolvedHostOnlyPaths(host.ResolvePath);
        var resolved = ImmutableArray.CreateBuilder<BindMount>(mounts.Length);
        foreach (var (mount, i) in mounts.Select((m, i) => (m, i)))
        {
            Throw(mount.Problem(i, host.ResolvePath, hostOnly));
            resolved.Add(mount with { Source = host.ResolvePath(mount.Source)! });
        }
        return resolved.MoveToImmutable();
    }

    /// <summary>The spec with its network taken from the pools: an address, and a host port for each NetIn.</summary>
    private ContainerSpec WithNetwork(ContainerSpec spec, NetworkSettings network, HostFacts host)
    {
        var asks = spec.NetworkRequest.Length > 0 || !spec.NetInOrEmpty.IsEmpty || !spec.NetOutOrEmpty.IsEmpty || spec.LimitsOrNone.BandwidthRate is not null;
        if (!network.Enabled)
        {
            if (asks) throw GardenException.Invalid("network", "networking is disabled on this daemon (garden.network.enabled = off)");
            return spec;
        }
        foreach (var m in spec.NetInOrEmpty) Throw(NetworkRequests.ContainerPortProblem(m.ContainerPort));
        Throw(NetworkRequests.RulesProblem(spec.NetOutOrEmpty, "net-out"));
        var pool = new NetworkPool(network);
        var allocation = pool.Allocate(this, spec.NetworkRequest);
        var ports = pool.TakePorts(this, spec.NetInOrEmpty.Select(m => m.HostPort), host.TcpPortInUse);
        return spec with
        {
            Network = allocation,
            NetIn = [.. spec.NetInOrEmpty.Select((m, i) => m with { HostPort = ports[i] })],
        };
    }
}

/// <summary>A Create the pools cannot serve because the warm pool holds what it needs: the client gets Unavailable
/// (try again), and the host gives back a pool entry.</summary>
public sealed class PoolHoldsRoom() : Exception("the warm pool holds what the Create needs");
