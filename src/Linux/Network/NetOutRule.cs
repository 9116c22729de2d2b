namespace Garden.Linux.Network;

public enum NetProtocol { All, Tcp, Udp, Icmp }

/// <summary>Something a container may reach: a protocol, destination ranges (none = anywhere), ports (tcp/udp only),
/// an ICMP type/code (icmp only), and whether new connections it allows are logged.</summary>
public sealed record NetOutRule(
    NetProtocol Protocol,
    IReadOnlyList<Ipv4Range> Networks,
    IReadOnlyList<PortRange> Ports,
    int? IcmpType = null,
    int? IcmpCode = null,
    bool Log = false)
{
    /// <summary>Throws <see cref="NetworkSpecException"/> naming the field when the rule is not consistent.</summary>
    public NetOutRule Validated()
    {
        if (Ports.Count > 0 && Protocol is not (NetProtocol.Tcp or NetProtocol.Udp))
            throw new NetworkSpecException("ports", $"ports need protocol tcp or udp (this rule's protocol is {Protocol.ToString().ToLowerInvariant()})");
        if (IcmpType is not null && Protocol != NetProtocol.Icmp)
            throw new NetworkSpecException("icmp", $"an ICMP type needs protocol icmp (this rule's protocol is {Protocol.ToString().ToLowerInvariant()})");
        if (IcmpType is < 0 or > 255) throw new NetworkSpecException("icmp", $"type {IcmpType} is out of range (0 to 255)");
        if (IcmpCode is < 0 or > 255) throw new NetworkSpecException("icmp", $"code {IcmpCode} is out of range (0 to 255)");
        if (IcmpCode is not null && IcmpType is null) throw new NetworkSpecException("icmp", "a code needs a type");
        return this;
    }

    public bool Equivalent(NetOutRule o) => Protocol == o.Protocol && Networks.SequenceEqual(o.Networks) &&
        Ports.SequenceEqual(o.Ports) && IcmpType == o.IcmpType && IcmpCode == o.IcmpCode && Log == o.Log;

    public override string ToString()
    {
        var s = Protocol.ToString().ToLowerInvariant();
        s += Networks.Count == 0 ? " anywhere" : " to " + string.Join(",", Networks);
        if (Ports.Count > 0) s += " port " + string.Join(",", Ports);
        if (IcmpType is not null) s += $" type {IcmpType}" + (IcmpCode is null ? "" : $"/{IcmpCode}");
        return Log ? s + " (logged)" : s;
    }
}

/// <summary>A DNAT from a host port to a container port (tcp).</summary>
public readonly record struct PortMapping(int HostPort, int ContainerPort)
{
    public override string ToString() => $"{HostPort}:{ContainerPort}";
}

/// <summary>A rate limit on a container's traffic, each direction: bytes per second and burst bytes.</summary>
public readonly record struct Bandwidth(ulong RateBytes, ulong BurstBytes);
