namespace Garden.Linux.Network;

/// <summary>One container's network: its subnet (the gateway, the subnet's first address, sits on the host's side)
/// and its address. Every kernel object is named from the prefix and the addresses, so a name alone says whose it is:
/// the bridge <c>{prefix}b{subnet hex}{length}</c>, the host end of the veth <c>{prefix}v{ip hex}</c>, the network
/// namespace <c>{prefix}{ip hex}</c> (in /run/netns), the firewall chains <c>{prefix}-o-{ip hex}</c> and
/// <c>{prefix}-n-{ip hex}</c>. Interface names stay within the kernel's 15 characters for a prefix of up to 4.</summary>
public sealed record ContainerNetwork(string Handle, string Prefix, Ipv4Cidr Subnet, Ipv4 Address, int Mtu)
{
    public const int MaxPrefixLength = 4;

    public Ipv4 Gateway => Subnet.Gateway;

    /// <summary>A /30 holds one container: the host's end of its veth carries the gateway itself (a bridge would only cost
    /// its creation and its slow removal). A larger subnet, shared by the containers that ask for it, gets a bridge.</summary>
    public bool Bridged => Subnet.PrefixLength < 30;
    public string Bridge => BridgeName(Prefix, Subnet);
    /// <summary>The host's interface of the container's subnet: the bridge, or for a /30 the host end of the veth.</summary>
    public string HostInterface => Bridged ? Bridge : HostVeth;
    public string HostVeth => $"{Prefix}v{Address.Hex}";
    /// <summary>The container's end while it is created in the host namespace (it becomes eth0 in the container's).</summary>
    public string PeerVeth => $"{Prefix}c{Address.Hex}";
    public string Netns => $"{Prefix}{Address.Hex}";
    public string NetnsPath => Path.Combine(NetnsDir, Netns);
    public string OutChain => $"{Prefix}-o-{Address.Hex}";
    public string NatChain => $"{Prefix}-n-{Address.Hex}";

    public const string NetnsDir = "/run/netns";

    public static string BridgeName(string prefix, Ipv4Cidr subnet) => $"{prefix}b{subnet.Network.Hex}{subnet.PrefixLength:00}";

    /// <summary>Null when the prefix is usable, else why not.</summary>
    public static string? PrefixProblem(string prefix) =>
        prefix.Length is 0 or > MaxPrefixLength || !char.IsAsciiLetterLower(prefix[0]) || !prefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c))
            ? $"\"{prefix}\" must be 1 to {MaxPrefixLength} lowercase letters or digits, starting with a letter" : null;
}
