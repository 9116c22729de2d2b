using Garden.Linux.Interop;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Garden.Linux.Process;

namespace Garden.Linux.Network;

/// <summary>Plumbing with iproute2 in batches (one `ip -batch` per namespace, one `tc -batch`): separate commands cost
/// several times as much. Bridges are shared by the containers of a subnet, so creating and removing one is serialized.
/// A /30 (one container) has no bridge: the host's end of the veth holds the gateway.</summary>
public sealed partial class IpPlumbing : INetworkPlumbing
{
    private const string SysNet = "/sys/class/net";
    private readonly Lazy<string> _ip;
    private readonly Lazy<string> _tc;
    private readonly SemaphoreSlim _bridges = new(1, 1);
    /// <summary>False on a host whose kernel has no IPv6 (ipv6.disable=1): there is nothing to turn off.</summary>
    private static readonly bool Ipv6 = Directory.Exists("/proc/sys/net/ipv6");

    private readonly bool _netlink;

    /// <param name="netlink">A container of its own subnet in a user namespace holder's network namespace (the default)
    /// gets its links over rtnetlink from gardend itself, without an `ip` process (false: `ip -batch` as for the rest;
    /// tests run both).</param>
    public IpPlumbing(string? ipPath = null, string? tcPath = null, bool netlink = true)
    {
        _ip = new(() => Command.Resolve(ipPath ?? "ip"));
        _tc = new(() => Command.Resolve(tcPath ?? "tc"));
        _netlink = netlink;
    }

    public Task WriteNameFilesAsync(ContainerNetwork network, NameFiles files, CancellationToken ct)
    {
        files.Write(network.Address);
        return Task.CompletedTask;
    }

    public async Task SetUpAsync(ContainerNetwork n, CancellationToken ct, int? netnsOfPid = null)
    {
        if (Directory.Exists(Path.Combine(SysNet, n.HostVeth)) || File.Exists(n.NetnsPath))
            await TearDownAsync(n, ct, wait: true).ConfigureAwait(false); // what a crashed create (or a destroy still settling) left
        Directory.CreateDirectory(ContainerNetwork.NetnsDir);
        if (_netlink && netnsOfPid is { } holder && !n.Bridged)
        {
            await SetUpByNetlinkAsync(n, holder, ct).ConfigureAwait(false);
            return;
        }
        var len = n.Subnet.PrefixLength;
        // One at a time where links are shared: a bridge is made by its first container and deleted with its last. A
        // container of its own (a /30, the default) shares nothing with another's setup: parallel Creates do not queue here.
        // (PruneAsync, which also takes the lock, runs before the daemon serves.)
        // The container's namespace exists already when it is the holder's: IPv6 off for every link made in it from now
        // on, the veth's end among them, with one write (each such write spins in the kernel while another holds the
        // rtnl lock, as netns teardown does for milliseconds: a profile of 10 Creates at once put 12% of gardend's CPU
        // in these writes). A namespace `ip netns add` makes (privileged) is written after the batch.
        var defaultWritten = netnsOfPid is not null && Ipv6;
        if (defaultWritten) await DisableIpv6InAsync($"/proc/{netnsOfPid}/ns/net", null, ct).ConfigureAwait(false);
        var shared = n.Bridged;
        if (shared) await _bridges.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var host = new StringBuilder();
            host.Append(netnsOfPid is { } pid ? $"netns attach {n.Netns} {pid}\n" : $"netns add {n.Netns}\n");
            var newBridge = n.Bridged && !Directory.Exists(Path.Combine(SysNet, n.Bridge));
            if (newBridge)
            {
                host.Append($"link add {n.Bridge} mtu {n.Mtu} type bridge\n");
                if (Ipv6) host.Append($"link set {n.Bridge} addrgenmode none\n");
                host.Append($"addr add {n.Gateway}/{len} broadcast {n.Subnet.Broadcast} dev {n.Bridge}\n");
                host.Append($"link set {n.Bridge} up\n");
            }
            host.Append($"link add {n.HostVeth} mtu {n.Mtu} type veth peer name {n.PeerVeth} mtu {n.Mtu} netns {n.Netns}\n");
            if (Ipv6) host.Append($"link set {n.HostVeth} addrgenmode none\n");
            if (n.Bridged) host.Append($"link set {n.HostVeth} master {n.Bridge} up\n");
            else
            {
                host.Append($"addr add {n.Gateway}/{len} broadcast {n.Subnet.Broadcast} dev {n.HostVeth}\n");
                host.Append($"link set {n.HostVeth} up\n");
            }
            await BatchAsync(null, host.ToString(), force: false, $"network of {n.Handle}", ct).ConfigureAwait(false);
            // NetIn from 127.0.0.1: DNATed loopback traffic may leave through the container's interface.
            // (That also lets the kernel take a container's frame to 127.0.0.1 for the host: the firewall drops it, see
            // FirewallRules.HostLoopback.)
            if (newBridge || !n.Bridged)
            {
                await File.WriteAllTextAsync($"/proc/sys/net/ipv4/conf/{n.HostInterface}/route_localnet", "1", ct).ConfigureAwait(false);
                // Strict reverse-path filter: what comes from the container must come from an address routed back to it.
                // Without it, ARP requests from made-up sender addresses made the host add a neighbour entry for each:
                // one container filled the host's table (gc_thresh3) in seconds, and the host lost its entries for other
                // containers and for its own gateway ("neighbor table overflow").
                await File.WriteAllTextAsync($"/proc/sys/net/ipv4/conf/{n.HostInterface}/rp_filter", "1", ct).ConfigureAwait(false);
            }
            await DisableHostIpv6Async(n, ct).ConfigureAwait(false);
        }
        finally
        {
            if (shared) _bridges.Release();
        }
        if (!defaultWritten && Ipv6) await DisableIpv6InAsync(n.NetnsPath, n.PeerVeth, ct).ConfigureAwait(false);
        var inside = $"""
            link set {n.PeerVeth} name eth0
            addr add {n.Address}/{len} broadcast {n.Subnet.Broadcast} dev eth0
            link set eth0 up
            link set lo up
            route add default via {n.Gateway}

            """;
        await BatchAsync(n.Netns, inside, force: false, $"network of {n.Handle} (inside)", ct).ConfigureAwait(false);
    }

    /// <summary>What the two batches below do for a /30 in a holder's namespace, over rtnetlink: the namespace bound at its
    /// path (`ip netns attach`), the veth made with its container end straight in the namespace as eth0 (IPv6 off there
    /// already: the namespace's default was written first, as below), the host end's addrgenmode, gateway and link, the
    /// host end's sysctls, then inside: eth0's address and link, lo, the default route.</summary>
    private static async Task SetUpByNetlinkAsync(ContainerNetwork n, int holder, CancellationToken ct)
    {
        var len = n.Subnet.PrefixLength;
        var what = $"network of {n.Handle}";
        var netnsOfHolder = $"/proc/{holder}/ns/net";
        if (Ipv6) await DisableIpv6InAsync(netnsOfHolder, null, ct).ConfigureAwait(false);
        NetnsFiles.Attach(n.NetnsPath, netnsOfHolder, what);
        using (var host = RtNetlink.Open(what))
        {
            using (var ns = Sys.Open(n.NetnsPath, Tmds.Linux.LibC.O_RDONLY))
                host.AddVethPair(n.HostVeth, "eth0", n.Mtu, ns);
            var index = host.IndexOf(n.HostVeth);
            if (Ipv6) host.SetAddrGenModeNone(index, n.HostVeth);
            host.AddAddress(index, n.HostVeth, n.Gateway, len, n.Subnet.Broadcast);
            host.SetUp(index, n.HostVeth);
        }
        // as in SetUpAsync: loopback NetIn, the strict reverse-path filter, no IPv6 on the host's end
        await File.WriteAllTextAsync($"/proc/sys/net/ipv4/conf/{n.HostVeth}/route_localnet", "1", ct).ConfigureAwait(false);
        await File.WriteAllTextAsync($"/proc/sys/net/ipv4/conf/{n.HostVeth}/rp_filter", "1", ct).ConfigureAwait(false);
        await DisableHostIpv6Async(n, ct).ConfigureAwait(false);
        using var inside = await RtNetlink.OpenInAsync(n.NetnsPath, $"{what} (inside)").WaitAsync(ct).ConfigureAwait(false);
        var eth0 = inside.IndexOf("eth0");
        inside.AddAddress(eth0, "eth0", n.Address, len, n.Subnet.Broadcast);
        inside.SetUp(eth0, "eth0");
        inside.SetUp(inside.IndexOf("lo"), "lo");
        inside.AddDefaultRoute(n.Gateway);
    }

    /// <summary>Containers get no IPv6 path (issue 9): no address on the host's end of the veth or on a bridge of ours
    /// (addrgenmode none, set before the links are up, so not even a link-local address ever exists), and IPv6 off on the
    /// host's interfaces (the kernel then drops every IPv6 packet that arrives on them, to any of the host's addresses) and
    /// on the container's end, written in its namespace while the link is still down. An existing bridge is set again
    /// when a container joins it (an older build made it with IPv6 on). The firewall's IPv6 guard (Ip6Rules) is the
    /// second wall. The container keeps ::1 on its own loopback.</summary>
    private static async Task DisableHostIpv6Async(ContainerNetwork n, CancellationToken ct)
    {
        if (!Ipv6) return;
        foreach (var link in n.Bridged ? new[] { n.Bridge, n.HostVeth } : [n.HostVeth])
            await File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{link}/disable_ipv6", "1", ct).ConfigureAwait(false);
    }

    /// <summary>IPv6 off in the container's namespace: for any link made in it from now on, and for
    /// <paramref name="link"/> (the container's end, still down, still named <see cref="ContainerNetwork.PeerVeth"/>)
    /// when it is there already.</summary>
    private static Task DisableIpv6InAsync(string netnsPath, string? link, CancellationToken ct) =>
        NetnsSysctl.WriteAsync(netnsPath, link is null
            ? [("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")]
            : [("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"), ($"/proc/sys/net/ipv6/conf/{link}/disable_ipv6", "1")]).WaitAsync(ct);

    /// <summary>Deleting the namespace takes the veth pair with it: the kernel finishes that on its own within milliseconds
    /// (deleting the veth here would wait for it, ~20 ms of RCU grace periods). A bridge is deleted with its last user.</summary>
    public Task TearDownAsync(ContainerNetwork n, CancellationToken ct) => TearDownAsync(n, ct, wait: false);

    private async Task TearDownAsync(ContainerNetwork n, CancellationToken ct, bool wait)
    {
        await _bridges.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var batch = new StringBuilder();
            var namespaced = File.Exists(n.NetnsPath);
            // On a shared bridge the veth goes now: whether the bridge still has users is read from its ports.
            var veth = (!namespaced || wait || n.Bridged) && Directory.Exists(Path.Combine(SysNet, n.HostVeth));
            var bridge = n.Bridged && Directory.Exists(Path.Combine(SysNet, n.Bridge)) && BridgeUnused(n.Bridge, except: n.HostVeth);
            if (_netlink && !veth && !bridge)
            {
                // only the namespace's name to remove (`ip netns del`): its links go with the namespace
                if (namespaced) NetnsFiles.Delete(n.NetnsPath, $"network of {n.Handle}");
            }
            else
            {
                if (namespaced) batch.Append($"netns del {n.Netns}\n");
                if (veth) batch.Append($"link del {n.HostVeth}\n");
                if (bridge) batch.Append($"link del {n.Bridge}\n");
            }
            if (batch.Length > 0) await BatchAsync(null, batch.ToString(), force: true, $"network of {n.Handle}", ct, check: false).ConfigureAwait(false);
            if (File.Exists(n.NetnsPath)) throw new NetworkException($"network of {n.Handle}: netns {n.Netns} is still there after removal");
            if (wait && Directory.Exists(Path.Combine(SysNet, n.HostVeth)))
                throw new NetworkException($"network of {n.Handle}: {n.HostVeth} is still there after removal");
        }
        finally
        {
            _bridges.Release();
        }
    }

    public bool Exists(ContainerNetwork n) => File.Exists(n.NetnsPath) && Directory.Exists(Path.Combine(SysNet, n.HostVeth));

    public NetCounters Counters(ContainerNetwork n)
    {
        ulong Read(string name)
        {
            try { return ulong.Parse(File.ReadAllText(Path.Combine(SysNet, n.HostVeth, "statistics", name)).Trim()); }
            catch (IOException) { return 0; }
        }
        // The host's end sends what the container receives.
        return new NetCounters(Read("tx_bytes"), Read("rx_bytes"));
    }

    public async Task SetBandwidthAsync(ContainerNetwork n, Bandwidth? limit, CancellationToken ct)
    {
        // Into the container: a token bucket on the egress of the host's end. Out of it: one on the egress of the
        // container's end, set from outside its namespace (an unprivileged container cannot change it: no CAP_NET_ADMIN).
        // (This kernel has no policing action, so ingress policing on the host's end is not an option.)
        if (limit is not { } l)
        {
            await TcAsync(null, $"qdisc del dev {n.HostVeth} root\n", force: true, n, ct, check: false).ConfigureAwait(false);
            await TcAsync(n.Netns, "qdisc del dev eth0 root\n", force: true, n, ct, check: false).ConfigureAwait(false);
            return;
        }
        var tbf = $"root tbf rate {l.RateBytes}bps burst {l.BurstBytes} latency 50ms";
        await TcAsync(null, $"qdisc replace dev {n.HostVeth} {tbf}\n", force: false, n, ct).ConfigureAwait(false);
        await TcAsync(n.Netns, $"qdisc replace dev eth0 {tbf}\n", force: false, n, ct).ConfigureAwait(false);
    }

    public async Task<Bandwidth?> ReadBandwidthAsync(ContainerNetwork n, CancellationToken ct)
    {
        var result = await Command.RunAsync(_tc.Value, ["-j", "qdisc", "show", "dev", n.HostVeth], ct).ConfigureAwait(false);
        if (!result.Succeeded) return null;
        using var doc = JsonDocument.Parse(result.Stdout.Length == 0 ? "[]" : result.Stdout);
        foreach (var q in doc.RootElement.EnumerateArray())
        {
            if (q.GetProperty("kind").GetString() != "tbf" || !q.TryGetProperty("options", out var o)) continue;
            return new Bandwidth(o.GetProperty("rate").GetUInt64(), o.GetProperty("burst").GetUInt64());
        }
        return null;
    }

    public async Task<IReadOnlyList<string>> PruneAsync(string prefix, IReadOnlyCollection<ContainerNetwork> live, CancellationToken ct)
    {
        var veths = live.Select(n => n.HostVeth).ToHashSet();
        var namespaces = live.Select(n => n.Netns).ToHashSet();
        var bridges = live.Select(n => n.Bridge).ToHashSet();
        // \A...\z: the whole name (.NET's $ also matches before a final newline)
        var ours = new Regex($@"\A{Regex.Escape(prefix)}(?:[0-9a-f]{{8}}|v[0-9a-f]{{8}}|c[0-9a-f]{{8}}|b[0-9a-f]{{10}})\z");
        var removed = new List<string>();
        await _bridges.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var batch = new StringBuilder();
            var links = Directory.Exists(SysNet) ? Directory.GetFileSystemEntries(SysNet).Select(Path.GetFileName).OfType<string>().ToList() : [];
            foreach (var link in links.Where(l => ours.IsMatch(l) && l[prefix.Length] is 'v' or 'c' && !veths.Contains(l)))
            {
                batch.Append($"link del {link}\n");
                removed.Add(link);
            }
            if (Directory.Exists(ContainerNetwork.NetnsDir))
                foreach (var ns in Directory.GetFiles(ContainerNetwork.NetnsDir).Select(Path.GetFileName).OfType<string>()
                             .Where(ns => ours.IsMatch(ns) && !namespaces.Contains(ns)))
                {
                    batch.Append($"netns del {ns}\n");
                    removed.Add(ns);
                }
            if (batch.Length > 0) await BatchAsync(null, batch.ToString(), force: true, "leftover networks", ct, check: false).ConfigureAwait(false);
            batch.Clear();
            foreach (var br in links.Where(l => ours.IsMatch(l) && l[prefix.Length] == 'b' && !bridges.Contains(l) && BridgeUnused(l, except: null)))
            {
                batch.Append($"link del {br}\n");
                removed.Add(br);
            }
            if (batch.Length > 0) await BatchAsync(null, batch.ToString(), force: true, "leftover bridges", ct, check: false).ConfigureAwait(false);
        }
        finally
        {
            _bridges.Release();
        }
        return removed;
    }

    private static bool BridgeUnused(string bridge, string? except)
    {
        var brif = Path.Combine(SysNet, bridge, "brif");
        return !Directory.Exists(brif) || Directory.GetFileSystemEntries(brif).All(p => Path.GetFileName(p) == except);
    }

    private Task BatchAsync(string? netns, string batch, bool force, string what, CancellationToken ct, bool check = true) =>
        RunBatchAsync("ip", _ip.Value, netns, batch, force, what, ct, check);

    private Task TcAsync(string? netns, string batch, bool force, ContainerNetwork n, CancellationToken ct, bool check = true) =>
        RunBatchAsync("tc", _tc.Value, netns, batch, force, $"bandwidth of {n.Handle}", ct, check);

    /// <summary>`ip` and `tc` read a batch the same way: `[-n NETNS] [-force] -batch FILE`.</summary>
    private static async Task RunBatchAsync(string tool, string path, string? netns, string batch, bool force, string what,
        CancellationToken ct, bool check)
    {
        using var file = Sys.MemfdWithContent($"garden-{tool}-batch", batch);
        var args = new List<string>();
        if (netns is not null) args.AddRange(["-n", netns]);
        if (force) args.Add("-force");
        args.AddRange(["-batch", "/proc/self/fd/3"]);
        var result = await Command.RunAsync(path, args, new CommandOutput(ExtraFiles: [file]), ct).ConfigureAwait(false);
        if (check && !result.Succeeded) throw new NetworkException($"{what}: {tool} refused it ({result.ExitCode}): {result.Stderr.Trim()}");
    }
}
