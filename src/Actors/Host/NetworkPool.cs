using Garden.Linux.Network;

namespace Garden.Actors.Host;

/// <summary>The subnet and host port pools: pure decisions over <see cref="HostState"/>.</summary>
public sealed record NetworkPool(NetworkSettings Settings)
{
    /// <summary>A network for a new container, for a request as <see cref="NetworkRequests.Parse"/> reads it: none = the
    /// first free /30 of the pool; a subnet = a free address of it; a subnet and an address = that address. A subnet may be
    /// shared by containers that ask for it; it may not overlap another one.</summary>
    public NetworkAllocation Allocate(HostState state, string request)
    {
        if (NetworkRequests.Parse(request) is not { } parsed) return FromPool(state);
        var (subnet, address) = parsed;
        foreach (var (handle, other) in state.Networks)
            if (other.Subnet != subnet && other.Subnet.Overlaps(subnet))
                throw new GardenException(ErrorKind.AlreadyExists,
                    $"network \"{request.Trim()}\" overlaps {other.Subnet}, the network of container {handle}");
        var taken = state.Networks.Where(kv => kv.Value.Subnet == subnet).ToDictionary(kv => kv.Value.Address, kv => kv.Key);
        if (address is { } a)
        {
            if (taken.TryGetValue(a, out var owner))
                throw new GardenException(ErrorKind.AlreadyExists, $"network: {a} is already the address of container {owner}");
            return new NetworkAllocation(subnet, a);
        }
        for (var ip = subnet.Gateway.Add(1); ip.CompareTo(subnet.Broadcast) < 0; ip = ip.Add(1))
            if (!taken.ContainsKey(ip)) return new NetworkAllocation(subnet, ip);
        throw new GardenException(ErrorKind.ResourceExhausted, $"network {subnet} has no free address left");
    }

    private NetworkAllocation FromPool(HostState state)
    {
        var pool = Settings.Pool;
        var used = state.Networks.Values.Select(n => n.Subnet).ToList();
        for (ulong i = 0; i < pool.Size / 4; i++)
        {
            var candidate = new Ipv4Cidr(pool.Network.Add((long)(i * 4)), 30);
            if (!used.Any(u => u.Overlaps(candidate))) return new NetworkAllocation(candidate, candidate.Gateway.Add(1));
        }
        throw new GardenException(ErrorKind.ResourceExhausted,
            $"the subnet pool {pool} is exhausted ({Settings.PoolCapacity} containers); destroy one or configure a larger garden.network.pool");
    }

    /// <summary>Host ports for NetIn requests: 0 takes the lowest free port of the pool; any other port must be free
    /// (not mapped by another NetIn, and nothing on the host listening on it: <paramref name="inUseOnHost"/>, read from
    /// the <see cref="HostFacts"/> gathered before).</summary>
    public IReadOnlyList<int> TakePorts(HostState state, IEnumerable<int> requested, Func<int, bool> inUseOnHost)
    {
        var mine = state.Ports.Values.SelectMany(p => p).ToHashSet();
        var owners = state.Ports.SelectMany(kv => kv.Value.Select(p => (Port: p, Handle: kv.Key))).ToDictionary(x => x.Port, x => x.Handle);
        var result = new List<int>();
        foreach (var port in requested)
        {
            if (NetworkRequests.HostPortProblem(port) is { } problem) throw problem;
            if (port == 0)
            {
                var free = Enumerable.Range(Settings.PortPoolStart, Settings.PortPoolSize).FirstOrDefault(p => !mine.Contains(p) && !inUseOnHost(p));
                if (free == 0)
                    throw new GardenException(ErrorKind.ResourceExhausted,
                        $"the host port pool {Settings.PortPoolStart}-{Settings.PortPoolStart + Settings.PortPoolSize - 1} is exhausted");
                mine.Add(free);
                result.Add(free);
                continue;
            }
            if (owners.TryGetValue(port, out var owner))
                throw new GardenException(ErrorKind.AlreadyExists, $"host port {port} is already mapped to container {owner}");
            if (mine.Contains(port)) throw GardenException.Invalid("host port", $"{port} is asked for twice");
            if (inUseOnHost(port)) throw new GardenException(ErrorKind.AlreadyExists, $"host port {port} is in use on the host");
            mine.Add(port);
            result.Add(port);
        }
        return result;
    }
}
