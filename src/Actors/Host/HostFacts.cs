using System.Collections.Immutable;
using Garden.Linux.Host;
using Garden.Linux.Network;

namespace Garden.Actors.Host;

/// <summary>What the host machine said before a decision of <see cref="HostState"/>: where each path a request names
/// really is (realpath(3); null = it does not exist) and whether each host port the decision may look at is bound.
/// Gathered by <see cref="ForCreate"/> / <see cref="ForNetIn"/> off the actor's thread (they ask the kernel); the
/// decisions read only these values, so they are pure and tested without a host.</summary>
public sealed record HostFacts(ImmutableDictionary<string, string?> Paths, ImmutableDictionary<int, bool> Ports)
{
    public static readonly HostFacts None = new(ImmutableDictionary<string, string?>.Empty, ImmutableDictionary<int, bool>.Empty);

    /// <summary>The canonical path, or null when it does not exist on the host.</summary>
    public string? ResolvePath(string path) => Paths.TryGetValue(path, out var real)
        ? real
        : throw new InvalidOperationException($"the host was not asked about the path {path} before the decision");

    /// <summary>True when a TCP socket of the host is bound to the port.</summary>
    public bool TcpPortInUse(int port) => Ports.TryGetValue(port, out var used)
        ? used
        : throw new InvalidOperationException($"the host was not asked about port {port} before the decision");

    /// <summary>The facts <see cref="HostState.Admit"/> reads for <paramref name="request"/>: its bind mount sources, its
    /// rootfs directory and the daemon's own paths, resolved; its host ports and enough of the port pool for its NetIns that ask for any port.</summary>
    public static HostFacts ForCreate(HostState state, ContainerSpec request, GardenSettings settings, IHostResources host)
    {
        var paths = ImmutableDictionary.CreateBuilder<string, string?>();
        var mounts = request.BindMountsOrEmpty;
        var rootfs = request.Rootfs.Length > 0 ? request.Rootfs : settings.DefaultRootfs;
        var rootDir = !Garden.Linux.Images.ImageReference.IsImage(rootfs);
        if (!mounts.IsEmpty || rootDir)
            foreach (var p in settings.HostOnlyPaths) paths[p] = host.ResolvePath(p);
        if (rootDir) paths[rootfs] = host.ResolvePath(rootfs);
        foreach (var m in mounts)
            if (m.Source.Length > 0 && m.Source[0] == '/') paths[m.Source] = host.ResolvePath(m.Source);
        var ports = settings.Network.Enabled
            ? PortsFor(state, request.NetInOrEmpty.Select(m => m.HostPort).ToList(), settings.Network, host)
            : ImmutableDictionary<int, bool>.Empty;
        return new HostFacts(paths.ToImmutable(), ports);
    }

    /// <summary>The facts <see cref="HostState.ReserveNetIn"/> reads: the host port asked for, or the pool's for 0.</summary>
    public static HostFacts ForNetIn(HostState state, int hostPort, NetworkSettings network, IHostResources host) =>
        None with { Ports = PortsFor(state, [hostPort], network, host) };

    /// <summary>Every valid port asked for by number; for the n requests of any port, the pool's ports in order (those no
    /// container maps) up to the n-th free one that is not also asked for by number: every port
    /// <see cref="NetworkPool.TakePorts"/> can reach. The pool is scanned only as far as that, as the decision would.</summary>
    private static ImmutableDictionary<int, bool> PortsFor(HostState state, IReadOnlyList<int> requested, NetworkSettings network, IHostResources host)
    {
        var ports = ImmutableDictionary.CreateBuilder<int, bool>();
        var named = requested.Where(p => p != 0 && NetworkRequests.HostPortProblem(p) is null).ToHashSet();
        foreach (var p in named) ports[p] = host.TcpPortInUse(p);
        var wanted = requested.Count(p => p == 0);
        if (wanted == 0) return ports.ToImmutable();
        var mapped = state.Ports.Values.SelectMany(p => p).ToHashSet();
        for (var p = network.PortPoolStart; p < network.PortPoolStart + network.PortPoolSize && wanted > 0; p++)
        {
            if (mapped.Contains(p)) continue;
            if (!ports.TryGetValue(p, out var used)) ports[p] = used = host.TcpPortInUse(p);
            if (!used && !named.Contains(p)) wanted--;
        }
        return ports.ToImmutable();
    }
}
