namespace Garden.Linux.Network;

/// <summary>What the operator allows every container (deny wins over allow; a container's NetOut rules come after both).</summary>
/// <param name="Pool">the subnet pool: one rule masquerades all of its containers (null: one rule per container).</param>
/// <param name="ConntrackFloor">nf_conntrack_max the host needs for every container's share of tracked flows: raised
/// (never lowered) once the rules that track are in, since the kernel's table may come only with them, after the
/// start's own raise found none (0: left alone).</param>
public sealed record FirewallOptions(string Prefix, IReadOnlyList<Ipv4Range> AllowNetworks, IReadOnlyList<Ipv4Range> DenyNetworks,
    Ipv4Cidr? Pool = null, long ConntrackFloor = 0);

/// <summary>Everything the firewall holds for one container.</summary>
public sealed record ContainerFirewall(ContainerNetwork Network, IReadOnlyList<PortMapping> NetIn, IReadOnlyList<NetOutRule> NetOut);

/// <summary>The host firewall: chains of our own (named by the prefix), jumped to once from the built-in chains, every
/// rule commented with its container's handle, every change one atomic batch.</summary>
public interface IFirewall
{
    /// <summary>Creates or replaces every rule of the container in one batch: on failure nothing of it changed.</summary>
    Task ApplyAsync(ContainerFirewall container, CancellationToken ct);

    /// <summary>After a restart: re-applies the container's rules only when the kernel does not hold them whole (its shared
    /// chain entries and the number of rules in its own chains), without a kernel call when they are there. True when it
    /// had to re-apply.</summary>
    Task<bool> EnsureAsync(ContainerFirewall container, CancellationToken ct);

    /// <summary>Removes every rule and chain of the container; what is gone already counts as done. The shared chains, the
    /// jumps into them and the IPv6 guard stay, even when it was the last container (see <see cref="ReleaseSharedAsync"/>).</summary>
    Task RemoveAsync(ContainerNetwork network, CancellationToken ct);

    /// <summary>Removes the rules and chains of every handle not in <paramref name="liveHandles"/> (what a crash left);
    /// when none of the live handles has rules left, the shared chains, their jumps and the IPv6 guard go too.
    /// Returns the handles whose rules were removed.</summary>
    Task<IReadOnlyList<string>> PruneAsync(IReadOnlySet<string> liveHandles, CancellationToken ct);

    /// <summary>The handles that have rules in the kernel now.</summary>
    Task<IReadOnlySet<string>> InstalledAsync(CancellationToken ct);

    /// <summary>At gardend's orderly stop: removes the shared chains, the jumps into them and the IPv6 guard when no container
    /// has anything left in the kernel (no entry in the shared chains, no chain of its own); leaves everything as it is
    /// otherwise (containers outlive gardend). True when it removed them.</summary>
    Task<bool> ReleaseSharedAsync(CancellationToken ct);
}

/// <summary>The kernel refused a firewall change; nothing of it was applied.</summary>
public sealed class FirewallException(string message, Exception? inner = null) : Exception(message, inner);
