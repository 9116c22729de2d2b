using Garden.Linux.Network;

namespace Garden.Actors;

/// <summary>What a client may ask of a container's network: the network a Create names, host and container ports of a
/// NetIn, and NetOut rules. The network layer's own parse errors (<see cref="NetworkSpecException"/>) become
/// InvalidArgument here, naming the field, and nowhere else.</summary>
public static class NetworkRequests
{
    /// <summary>The smallest and largest container network a Create may name.</summary>
    public const int MinPrefix = 8, MaxPrefix = 30;

    /// <summary>A Create's network request: empty = none named (the pool picks); "a.b.c.d" = that address in its /30;
    /// "a.b.c.0/n" = some address of that subnet; "a.b.c.d/n" = that address in that subnet. The subnet must have room
    /// for a gateway and a container, and the address may be neither the gateway nor the broadcast address.</summary>
    public static (Ipv4Cidr Subnet, Ipv4? Address)? Parse(string request)
    {
        request = request.Trim();
        if (request.Length == 0) return null;
        Ipv4Cidr subnet;
        Ipv4? address;
        try
        {
            if (request.Contains('/')) (subnet, address) = Ipv4Cidr.Parse(request, "network");
            else
            {
                var ip = Ipv4.Parse(request, "network");
                (subnet, address) = (Ipv4Cidr.Of(ip, MaxPrefix), ip);
            }
        }
        catch (NetworkSpecException e)
        {
            throw ToGarden(e);
        }
        if (subnet.PrefixLength > MaxPrefix)
            throw GardenException.Invalid("network", $"\"{request}\": a /{subnet.PrefixLength} has no room for a gateway and a container (at most /{MaxPrefix})");
        if (subnet.PrefixLength < MinPrefix)
            throw GardenException.Invalid("network", $"\"{request}\": a /{subnet.PrefixLength} is larger than any container network should be (at least /{MinPrefix})");
        if (address is { } a && a == subnet.Gateway)
            throw GardenException.Invalid("network", $"{a} is the gateway of {subnet}; a container needs another address");
        if (address is { } b && b == subnet.Broadcast)
            throw GardenException.Invalid("network", $"{b} is the broadcast address of {subnet}");
        return (subnet, address);
    }

    /// <summary>A NetIn's host port: 1 to 65535, or 0 for one from the pool.</summary>
    public static GardenException? HostPortProblem(int port) =>
        port is < 0 or > 65535 ? GardenException.Invalid("host port", $"{port} is out of range (1 to 65535, or 0 for one from the pool)") : null;

    /// <summary>A NetIn's container port: 1 to 65535.</summary>
    public static GardenException? ContainerPortProblem(int port) =>
        port is < 1 or > 65535 ? GardenException.Invalid("container port", $"{port} is out of range (1 to 65535)") : null;

    /// <summary>A NetOut rule from its parts as a client sends them: a protocol number (0 all, 1 tcp, 2 udp, 3 icmp),
    /// networks as "a.b.c.d", "a.b.c.d/n" or a start and end address, port ranges (end 0 = the start alone), an ICMP type
    /// and code (code null = every code). <paramref name="field"/> names the rule in errors ("rule 1").</summary>
    public static NetOutRule Rule(int protocol, IEnumerable<(string Start, string End)> networks, IEnumerable<(int Start, int End)> ports,
        int? icmpType, int? icmpCode, bool log, string field)
    {
        try
        {
            if (!Enum.IsDefined((NetProtocol)protocol))
                throw new NetworkSpecException($"{field} protocol", $"{protocol} is not all, tcp, udp or icmp");
            return new NetOutRule((NetProtocol)protocol,
                [.. networks.Select(n => Network(n.Start, n.End, $"{field} network"))],
                [.. ports.Select(p => PortRange.Create(p.Start, p.End, $"{field} port"))],
                icmpType, icmpCode, log).Validated();
        }
        catch (NetworkSpecException e)
        {
            throw ToGarden(e);
        }
    }

    /// <summary>A destination as sent; an error quotes all of it ("not-an-ip", not the "not" before its dash).</summary>
    private static Ipv4Range Network(string start, string end, string field)
    {
        try
        {
            return Ipv4Range.Parse(start, end, field);
        }
        catch (NetworkSpecException e)
        {
            var whole = string.IsNullOrEmpty(end) ? start : $"{start}-{end}";
            throw new NetworkSpecException(field, $"{Names.Quote(whole)}: {e.Problem}");
        }
    }

    /// <summary>What is wrong with the rules of a NetOut (or of a Create, <paramref name="prefix"/> "net-out"), or null.</summary>
    public static GardenException? RulesProblem(IReadOnlyCollection<NetOutRule> rules, string? prefix = null)
    {
        try
        {
            foreach (var r in rules) r.Validated();
            return null;
        }
        catch (NetworkSpecException e)
        {
            return GardenException.Invalid(prefix is null ? e.Field : $"{prefix} {e.Field}", e.Problem);
        }
    }

    /// <summary>The network layer's refusal as the domain's error, naming the field.</summary>
    public static GardenException ToGarden(NetworkSpecException e) => GardenException.Invalid(e.Field, e.Problem);
}
