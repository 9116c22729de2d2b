namespace Garden.Linux.Network;

/// <summary>Bytes the container received and sent.</summary>
public readonly record struct NetCounters(ulong RxBytes, ulong TxBytes);

/// <summary>The kernel side of a container's network: a network namespace (handed to the runtime), a bridge per subnet
/// holding the gateway, a veth pair, the container's address, route and MTU, and the bandwidth limit.</summary>
public interface INetworkPlumbing
{
    /// <summary>Creates the namespace and links; leftovers of an earlier attempt are removed first. With
    /// <paramref name="netnsOfPid"/> the namespace is not made new but is that process's (one a container's user namespace
    /// owns), bound at <see cref="ContainerNetwork.NetnsPath"/> like a new one.</summary>
    Task SetUpAsync(ContainerNetwork network, CancellationToken ct, int? netnsOfPid = null);

    /// <summary>Removes the namespace, the veth pair and the bridge when no other container uses it; what is gone
    /// already counts as done.</summary>
    Task TearDownAsync(ContainerNetwork network, CancellationToken ct);

    /// <summary>Writes the container's /etc/hosts (its own name at its address) and /etc/resolv.conf on the host, for the
    /// runtime to bind-mount read-only.</summary>
    Task WriteNameFilesAsync(ContainerNetwork network, NameFiles files, CancellationToken ct);

    /// <summary>True when the namespace and the host's end of the veth are there.</summary>
    bool Exists(ContainerNetwork network);

    NetCounters Counters(ContainerNetwork network);

    /// <summary>Limits both directions on the host's end of the veth; null removes the limit.</summary>
    Task SetBandwidthAsync(ContainerNetwork network, Bandwidth? limit, CancellationToken ct);

    /// <summary>The limit in force (read back from the kernel), or null.</summary>
    Task<Bandwidth?> ReadBandwidthAsync(ContainerNetwork network, CancellationToken ct);

    /// <summary>Removes every namespace, veth and unused bridge named with <paramref name="prefix"/> that belongs to
    /// none of <paramref name="live"/>; returns what it removed.</summary>
    Task<IReadOnlyList<string>> PruneAsync(string prefix, IReadOnlyCollection<ContainerNetwork> live, CancellationToken ct);
}

/// <summary>The kernel refused a network change.</summary>
public sealed class NetworkException(string message, Exception? inner = null) : Exception(message, inner);
