using Garden.Linux.Network;

namespace Garden.Actors.Host;

/// <summary>The subnet and host port pools: pure decisions over <see cref="HostState"/>.</summary>
public sealed record NetworkPool(NetworkSettings Settings)
{
    /// <summary>A network for a new container. <paramref name="request"/>: empty = the first free /30 of the pool;
    /// "a.b.c.d" = that address in its /30; "a.b.c.0/n" = a free address of that subnet; "a.b.c.d/n" = that address in
    /// that subnet. A subnet may be shared by containers that ask for it; it may not overlap another one.</summary>
    public NetworkAllocation Allocate(HostState state, string request)
    {
        request = request.Trim();
        if (request.Length == 0) return FromPool(state);
        Ipv4Cidr subnet;
        Ipv4? address;
        try
        {
            if (request.Contains('/')) (subnet, address) = Ipv4Cidr.Parse(request, "network");
            else
            {
                var ip = Ipv4.Parse(request, "network");
                (subnet, address) = (Ipv4Cidr.Of(ip, 30), ip);
            }
        }
        catch (NetworkSpecException e)
        {
            throw GardenException.Invalid("network", e.Problem);
        }
        if (subnet.PrefixLength > 30)
            throw GardenException.Invalid("network", $"\"{request}\": a /{subnet.PrefixLength} has no room for a gateway and a container (at most /30)");
        if (subnet.PrefixLength < 8)
            throw GardenException.Invalid("network", $"\"{request}\": a /{subnet.PrefixLength} is larger than any container network should be (at least /8)");
        foreach (var (handle, other) in state.Networks)
            if (other.Subnet != subnet && other.Subnet.Overlaps(subnet))
                throw new GardenException(ErrorKind.AlreadyExists,
                    $"network \"{request}\" overlaps {other.Subnet}, the network of container {handle}");
        var taken = state.Networks.Where(kv => kv.Value.Subnet == subnet).ToDictionary(kv => kv.Value.Address, kv => kv.Key);
        if (address is { } a)
        {
            if (a == subnet.Gateway) throw GardenException.Invalid("network", $"{a} is the gateway of {subnet}; a container needs another address");
            if (a == subnet.Broadcast) throw GardenException.Invalid("network", $"{a} is the broadcast address of {subnet}");
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
    /// (not mapped by another NetIn, and nothing on the host listening on it).</summary>
    public IReadOnlyList<int> TakePorts(HostState state, IEnumerable<int> requested, Func<int, bool> inUseOnHost)
    {
        var mine = state.Ports.Values.SelectMany(p => p).ToHashSet();
        var owners = state.Ports.SelectMany(kv => kv.Value.Select(p => (Port: p, Handle: kv.Key))).ToDictionary(x => x.Port, x => x.Handle);
        var result = new List<int>();
        foreach (var port in requested)
        {
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
            if (port is < 1 or > 65535) throw GardenException.Invalid("host port", $"{port} is out of range (1 to 65535, or 0 for one from the pool)");
            if (owners.TryGetValue(port, out var owner))
                throw new GardenException(ErrorKind.AlreadyExists, $"host port {port} is already mapped to container {owner}");
            if (mine.Contains(port)) throw GardenException.Invalid("host port", $"{port} is asked for twice");
            if (inUseOnHost(port)) throw new GardenException(ErrorKind.AlreadyExists, $"host port {port} is in use on the host");
            mine.Add(port);
            result.Add(port);
        }
        return result;
    }

    public static void ValidateContainerPort(int port)
    {
        if (port is < 1 or > 65535) throw GardenException.Invalid("container port", $"{port} is out of range (1 to 65535)");
    }
}
