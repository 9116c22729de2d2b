using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>A prefix and addresses of their own for each test object (prefix "tl" + two characters, addresses in
/// 10.253.0.0/16): tests running side by side never meet, and the leak check looks for "tl*".</summary>
internal static class TestNet
{
    private static int _next;

    public static (string Prefix, int Block) Next()
    {
        var n = Interlocked.Increment(ref _next) % 256;
        const string digits = "0123456789abcdefghijklmnopqrstuvwxyz";
        return ($"tl{digits[n / 36 % 36]}{digits[n % 36]}", n);
    }

    public static ContainerNetwork Net(string prefix, int block, string handle, int index, int prefixLength = 30)
    {
        var subnet = Ipv4Cidr.Of(Ipv4.Parse($"10.253.{block}.{index * 4}", "t"), prefixLength);
        var address = subnet.Gateway.Add(1);
        return new ContainerNetwork(handle, prefix, subnet, address, 1500);
    }

    public static async Task<string> Sh(string command)
    {
        var r = await Command.RunAsync("/bin/sh", ["-c", command]);
        return r.Stdout + r.Stderr;
    }
}

public abstract class NetworkPlumbingContract : IAsyncLifetime
{
    protected readonly string Prefix;
    private readonly int _block;
    protected abstract INetworkPlumbing Plumbing { get; }
    protected readonly List<ContainerNetwork> Made = [];

    protected NetworkPlumbingContract() => (Prefix, _block) = TestNet.Next();

    protected ContainerNetwork Net(string handle, int index, int prefixLength = 30)
    {
        var n = TestNet.Net(Prefix, _block, handle, index, prefixLength);
        Made.Add(n);
        return n;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in Made) await Plumbing.TearDownAsync(n, default);
    }

    [GatedFact]
    public async Task SetUp_makes_the_network_and_TearDown_removes_it_idempotently()
    {
        var n = Net("a", 0);
        Assert.False(Plumbing.Exists(n));
        await Plumbing.SetUpAsync(n, default);
        Assert.True(Plumbing.Exists(n));
        await Plumbing.TearDownAsync(n, default);
        Assert.False(Plumbing.Exists(n));
        await Plumbing.TearDownAsync(n, default);
    }

    [GatedFact]
    public async Task Name_files_give_the_container_its_name_and_the_configured_or_reachable_host_name_servers()
    {
        var dir = TestPaths.NewTempDir("names");
        try
        {
            var n = Net("names", 11);
            var hostResolv = Path.Combine(dir, "host-resolv.conf");
            File.WriteAllText(hostResolv, "search example\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n nameserver\t192.0.2.1 \nnameserver ::1\n");
            var own = new NameFiles(Path.Combine(dir, "hosts"), Path.Combine(dir, "resolv.conf"), "box", [], null, hostResolv);
            await Plumbing.WriteNameFilesAsync(n, own, default);
            Assert.Contains($"{n.Address} box\n", File.ReadAllText(own.HostsPath));
            Assert.StartsWith("127.0.0.1 localhost\n", File.ReadAllText(own.HostsPath));
            // the host's loopback resolver (systemd-resolved's 127.0.0.53) is unreachable from a container: left out
            Assert.Equal("nameserver 10.1.2.3\nnameserver 192.0.2.1\n", File.ReadAllText(own.ResolvPath));

            await Plumbing.WriteNameFilesAsync(n, own with { DnsServers = ["8.8.8.8"] }, default);
            Assert.Equal("nameserver 8.8.8.8\n", File.ReadAllText(own.ResolvPath));

            File.WriteAllText(hostResolv, "nameserver 127.0.0.1\n");
            await Plumbing.WriteNameFilesAsync(n, own, default);
            Assert.StartsWith("# no name server", File.ReadAllText(own.ResolvPath));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [GatedFact]
    public async Task SetUp_over_leftovers_of_a_crashed_create_starts_afresh()
    {
        var n = Net("a", 1);
        await Plumbing.SetUpAsync(n, default);
        await Plumbing.SetUpAsync(n, default);
        Assert.True(Plumbing.Exists(n));
    }

    [GatedFact]
    public async Task Bandwidth_is_set_read_back_and_removed()
    {
        var n = Net("a", 2);
        await Plumbing.SetUpAsync(n, default);
        Assert.Null(await Plumbing.ReadBandwidthAsync(n, default));
        await Plumbing.SetBandwidthAsync(n, new Bandwidth(1_000_000, 100_000), default);
        Assert.Equal(new Bandwidth(1_000_000, 100_000), await Plumbing.ReadBandwidthAsync(n, default));
        await Plumbing.SetBandwidthAsync(n, null, default);
        Assert.Null(await Plumbing.ReadBandwidthAsync(n, default));
    }

    [GatedFact]
    public async Task Prune_removes_what_belongs_to_no_live_container()
    {
        var live = Net("live", 3);
        var dead = Net("dead", 4);
        await Plumbing.SetUpAsync(live, default);
        await Plumbing.SetUpAsync(dead, default);
        await Plumbing.PruneAsync(Prefix, [live], default);
        Assert.True(Plumbing.Exists(live));
        Assert.False(Plumbing.Exists(dead));
    }
}

[RequiresRoot]
public sealed class RealNetworkPlumbingContract : NetworkPlumbingContract
{
    protected override INetworkPlumbing Plumbing { get; } = new IpPlumbing();

    [GatedFact]
    public async Task Name_files_are_world_readable_and_read_only_for_everyone_else()
    {
        var dir = TestPaths.NewTempDir("names-mode");
        try
        {
            var files = new NameFiles(Path.Combine(dir, "hosts"), Path.Combine(dir, "resolv.conf"), "c", ["10.0.0.53"], null);
            await Plumbing.WriteNameFilesAsync(Net("m", 10), files, default);
            foreach (var f in new[] { files.HostsPath, files.ResolvPath })
                Assert.Equal("644 0:0", (await TestNet.Sh($"stat -c '%a %u:%g' {f}")).Trim());
            // an unprivileged container's are its root's, as in Garden
            await Plumbing.WriteNameFilesAsync(Net("m", 10), files with { Owner = new UserNamespaceRoot("/proc/self/ns/user", 4294967294, 4294967294) }, default);
            Assert.Equal("644 4294967294:4294967294", (await TestNet.Sh($"stat -c '%a %u:%g' {files.ResolvPath}")).Trim());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool Link(string name) => Directory.Exists(Path.Combine("/sys/class/net", name));

    /// <summary>The kernel removes a deleted namespace's veth on its own, within milliseconds.</summary>
    private static async Task<bool> GoneSoon(string link)
    {
        for (var i = 0; i < 200 && Link(link); i++) await Task.Delay(10);
        return !Link(link);
    }

    [InstallFact] // the user namespace holder is the agent binary
    public async Task The_namespace_of_a_user_namespace_holder_is_bound_as_the_containers_and_removed_like_one()
    {
        var n = Net("u", 9);
        await using (var holder = await new Garden.Linux.UserNamespaces.HolderUserNamespaces(TestPaths.AgentBinary)
                         .CreateAsync("u", Garden.Linux.UserNamespaces.IdMapping.Garden, default))
        {
            await Plumbing.SetUpAsync(n, default, holder.Pid);
            // the bound namespace is the holder's (owned by its user namespace), not a new one
            Assert.Equal(new FileInfo($"/proc/{holder.Pid}/ns/net").LinkTarget, $"net:[{(await TestNet.Sh($"stat -L -c %i {n.NetnsPath}")).Trim()}]");
        }
        // it outlives the holder: the bind mount keeps it, with the container's end of the veth in it
        Assert.True(Plumbing.Exists(n));
        Assert.Contains($"inet {n.Address}/30", await TestNet.Sh($"ip -n {n.Netns} -o addr show dev eth0"));
        await Plumbing.TearDownAsync(n, default);
        Assert.False(Plumbing.Exists(n));
        Assert.True(await GoneSoon(n.HostVeth));
    }

    [GatedFact]
    public async Task A_slash_30_has_no_bridge_the_host_end_of_the_veth_is_the_gateway()
    {
        var n = Net("a", 8);
        await Plumbing.SetUpAsync(n, default);
        Assert.False(n.Bridged);
        Assert.False(Link(n.Bridge));
        Assert.Contains($"inet {n.Gateway}/30", await TestNet.Sh($"ip -o addr show dev {n.HostVeth}"));
        Assert.Contains($"inet {n.Address}/30", await TestNet.Sh($"ip -n {n.Netns} -o addr show dev eth0"));
        Assert.Equal("1", File.ReadAllText($"/proc/sys/net/ipv4/conf/{n.HostVeth}/route_localnet").Trim());
        await Plumbing.TearDownAsync(n, default);
        Assert.False(File.Exists(n.NetnsPath));
        Assert.True(await GoneSoon(n.HostVeth));
    }

    [GatedFact]
    public async Task The_container_end_is_eth0_with_its_address_route_and_mtu_and_the_host_end_sits_on_the_bridge()
    {
        var n = Net("a", 5, prefixLength: 29);
        await Plumbing.SetUpAsync(n, default);
        var inside = await TestNet.Sh($"ip -n {n.Netns} -o addr show dev eth0; ip -n {n.Netns} route; ip -n {n.Netns} -o link show eth0; ip -n {n.Netns} -o link show lo");
        Assert.Contains($"inet {n.Address}/29", inside);
        Assert.Contains($"default via {n.Gateway}", inside);
        Assert.Contains("mtu 1500", inside);
        Assert.Contains("UP", inside.Split('\n').Last(l => l.Contains("lo:")));
        Assert.True(Link(n.HostVeth));
        Assert.True(File.Exists(Path.Combine("/sys/class/net", n.Bridge, "brif", n.HostVeth)) ||
                    Directory.Exists(Path.Combine("/sys/class/net", n.Bridge, "brif", n.HostVeth)));
        Assert.Contains($"inet {n.Gateway}/29", await TestNet.Sh($"ip -o addr show dev {n.Bridge}"));
        Assert.Equal("1", File.ReadAllText($"/proc/sys/net/ipv4/conf/{n.Bridge}/route_localnet").Trim());
        await Plumbing.TearDownAsync(n, default);
        Assert.True(await GoneSoon(n.HostVeth));
        Assert.False(Link(n.Bridge));
        Assert.False(File.Exists(n.NetnsPath));
    }

    [GatedFact]
    public async Task Containers_of_one_subnet_share_its_bridge_until_the_last_one_leaves()
    {
        var a = Net("a", 6, prefixLength: 28);
        var b = a with { Handle = "b", Address = a.Address.Add(1) };
        Made.Add(b);
        await Plumbing.SetUpAsync(a, default);
        await Plumbing.SetUpAsync(b, default);
        Assert.Equal(a.Bridge, b.Bridge);
        await Plumbing.TearDownAsync(a, default);
        Assert.True(Link(b.Bridge));
        Assert.True(Plumbing.Exists(b));
        await Plumbing.TearDownAsync(b, default);
        Assert.False(Link(b.Bridge));
        Assert.True(await GoneSoon(b.HostVeth));
    }

    [GatedFact]
    public async Task No_link_of_a_container_network_has_IPv6_neither_a_bridge_nor_either_end_of_a_veth()
    {
        var bridged = Net("a", 9, prefixLength: 29);
        var single = Net("b", 12);
        await Plumbing.SetUpAsync(bridged, default);
        await Plumbing.SetUpAsync(single, default);
        foreach (var link in new[] { bridged.Bridge, bridged.HostVeth, single.HostVeth })
        {
            Assert.Equal("", await TestNet.Sh($"ip -6 -o addr show dev {link}"));
            Assert.Equal("1", File.ReadAllText($"/proc/sys/net/ipv6/conf/{link}/disable_ipv6").Trim());
        }
        foreach (var n in new[] { bridged, single })
        {
            var inside = await TestNet.Sh($"ip netns exec {n.Netns} sh -c 'cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -6 -o addr'");
            // IPv6 is off on eth0; the container keeps ::1 on its own loopback.
            Assert.Equal("1", inside.Split('\n')[0]);
            Assert.DoesNotContain("eth0", inside);
            Assert.Contains("::1/128", inside);
        }
    }

    [GatedFact]
    public async Task Counters_count_what_the_container_receives_and_sends()
    {
        var n = Net("a", 7);
        await Plumbing.SetUpAsync(n, default);
        var before = Plumbing.Counters(n);
        // Three pings from inside the namespace to its gateway: out of the container, and the replies back in.
        await TestNet.Sh($"ip netns exec {n.Netns} busybox ping -c 3 -W 1 {n.Gateway}");
        var after = Plumbing.Counters(n);
        Assert.True(after.TxBytes > before.TxBytes, $"tx {before.TxBytes} -> {after.TxBytes}");
        Assert.True(after.RxBytes > before.RxBytes, $"rx {before.RxBytes} -> {after.RxBytes}");
    }
}

public sealed class FakeNetworkPlumbingContract : NetworkPlumbingContract
{
    protected override INetworkPlumbing Plumbing { get; } = new FakeNetwork(new CallLog());
}

public abstract class FirewallContract : IAsyncLifetime
{
    protected readonly string Prefix;
    private readonly int _block;
    protected abstract IFirewall Firewall { get; }
    private readonly List<ContainerNetwork> _made = [];

    protected FirewallContract() => (Prefix, _block) = TestNet.Next();

    protected ContainerNetwork Net(string handle, int index)
    {
        var n = TestNet.Net(Prefix, _block, handle, index);
        _made.Add(n);
        return n;
    }

    protected static NetOutRule Tcp(string to, int port) => new(NetProtocol.Tcp, [Ipv4Range.Parse(to, "t")], [new PortRange(port, port)]);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var n in _made) await Firewall.RemoveAsync(n, default);
        await Firewall.ReleaseSharedAsync(default); // as gardend does when it stops
    }

    /// <summary>The shared chains, the jumps into them and the IPv6 guard: "all" there, "none" of it, or what is partly there.</summary>
    protected abstract Task<string> SharedAsync();

    [GatedFact]
    public async Task Apply_installs_and_Remove_uninstalls_idempotently()
    {
        var n = Net("a", 0);
        await Firewall.ApplyAsync(new ContainerFirewall(n, [new PortMapping(41000, 80)], [Tcp("10.1.0.0/24", 80)]), default);
        Assert.Contains("a", await Firewall.InstalledAsync(default));
        await Firewall.ApplyAsync(new ContainerFirewall(n, [], []), default); // replaces
        Assert.Contains("a", await Firewall.InstalledAsync(default));
        await Firewall.RemoveAsync(n, default);
        Assert.DoesNotContain("a", await Firewall.InstalledAsync(default));
        await Firewall.RemoveAsync(n, default);
    }

    /// <summary>Loses the container's own out chain rules the way an operator's flush would.</summary>
    protected abstract Task LoseRulesAsync(ContainerNetwork n);

    [GatedFact]
    public async Task Ensure_leaves_intact_rules_alone_and_puts_back_lost_ones()
    {
        var n = Net("e", 6);
        var rules = new ContainerFirewall(n, [new PortMapping(41003, 80)], [Tcp("10.1.0.0/24", 80)]);
        Assert.True(await Firewall.EnsureAsync(rules, default)); // nothing there yet
        Assert.False(await Firewall.EnsureAsync(rules, default));
        await LoseRulesAsync(n);
        await Firewall.InstalledAsync(default); // a restarted daemon reads the kernel afresh
        Assert.True(await Firewall.EnsureAsync(rules, default));
        Assert.False(await Firewall.EnsureAsync(rules, default));
    }

    [GatedFact]
    public async Task An_inconsistent_rule_is_refused_naming_the_field_and_changes_nothing()
    {
        var n = Net("a", 1);
        var e = await Assert.ThrowsAsync<NetworkSpecException>(() => Firewall.ApplyAsync(
            new ContainerFirewall(n, [], [new NetOutRule(NetProtocol.Icmp, [], [new PortRange(1, 2)])]), default));
        Assert.Equal("ports", e.Field);
        Assert.DoesNotContain("a", await Firewall.InstalledAsync(default));
    }

    [GatedFact]
    public async Task Prune_removes_the_rules_of_handles_that_are_not_live()
    {
        var live = Net("live", 2);
        var dead = Net("dead", 3);
        await Firewall.ApplyAsync(new ContainerFirewall(live, [], []), default);
        await Firewall.ApplyAsync(new ContainerFirewall(dead, [], []), default);
        var pruned = await Firewall.PruneAsync(new HashSet<string> { "live" }, default);
        Assert.Equal(["dead"], pruned);
        var installed = await Firewall.InstalledAsync(default);
        Assert.Contains("live", installed);
        Assert.DoesNotContain("dead", installed);
        Assert.Equal("all", await SharedAsync()); // a live container has rules
    }

    [GatedFact]
    public async Task The_shared_chains_outlive_the_last_container_and_go_with_Release_only_when_no_container_has_rules()
    {
        var a = Net("sa", 11);
        var b = Net("sb", 12);
        Assert.Equal("none", await SharedAsync());
        Assert.False(await Firewall.ReleaseSharedAsync(default)); // nothing to release
        await Firewall.ApplyAsync(new ContainerFirewall(a, [new PortMapping(41006, 80)], [Tcp("10.1.0.0/24", 80)]), default);
        Assert.Equal("all", await SharedAsync());
        Assert.False(await Firewall.ReleaseSharedAsync(default)); // a container has rules: everything stays
        Assert.Equal("all", await SharedAsync());
        Assert.Contains("sa", await Firewall.InstalledAsync(default));

        await Firewall.RemoveAsync(a, default); // the last container
        Assert.DoesNotContain("sa", await Firewall.InstalledAsync(default));
        Assert.Equal("all", await SharedAsync());
        await Firewall.ApplyAsync(new ContainerFirewall(b, [], []), default); // the next first one
        Assert.False(await Firewall.EnsureAsync(new ContainerFirewall(b, [], []), default));
        await Firewall.RemoveAsync(b, default);
        Assert.Equal("all", await SharedAsync());

        Assert.True(await Firewall.ReleaseSharedAsync(default));
        Assert.Equal("none", await SharedAsync());
        Assert.False(await Firewall.ReleaseSharedAsync(default));
        await Firewall.RemoveAsync(b, default); // nothing there: still done
        Assert.Equal("none", await SharedAsync());
    }

    [GatedFact]
    public async Task Prune_with_no_live_container_left_with_rules_removes_the_shared_chains()
    {
        var a = Net("pa", 13);
        await Firewall.ApplyAsync(new ContainerFirewall(a, [], []), default);
        await Firewall.RemoveAsync(a, default);
        Assert.Equal("all", await SharedAsync());
        // A container without a network is live but has no rules: it keeps nothing.
        Assert.Empty(await Firewall.PruneAsync(new HashSet<string> { "no-network" }, default));
        Assert.Equal("none", await SharedAsync());
    }
}

[RequiresRoot]
public sealed class RealFirewallContract : FirewallContract
{
    private readonly IptablesFirewall _firewall;
    protected override IFirewall Firewall => _firewall;

    public RealFirewallContract() => _firewall = new IptablesFirewall(new FirewallOptions(Prefix, [Ipv4Range.Parse("10.9.0.0/16", "t")], [Ipv4Range.Parse("10.9.9.0/24", "t")]));

    private static Task<string> Save() => TestNet.Sh("iptables-save");

    protected override Task LoseRulesAsync(ContainerNetwork n) => TestNet.Sh($"iptables -F {n.OutChain}");

    protected override async Task<string> SharedAsync()
    {
        var v4 = await Save();
        var v6 = await Save6();
        List<string> missing = [];
        foreach (var (_, builtin, suffix) in FirewallRules.Hooks)
        {
            if (!v4.Contains($"-A {builtin} -j {Prefix}-{suffix}\n")) missing.Add($"jump {builtin}");
            if (!v4.Contains($":{Prefix}-{suffix} ")) missing.Add($"chain {Prefix}-{suffix}");
        }
        foreach (var (builtin, suffix) in Ip6Rules.Hooks)
            if (!v6.Contains($"-A {builtin} -j {Prefix}-{suffix}\n")) missing.Add($"ip6 jump {builtin}");
        var guard = v6.Split('\n').Count(l => l.StartsWith($"-A {Prefix}-") && l.Contains($"{Prefix}:no-ipv6"));
        if (guard != Ip6Rules.Rules(Prefix).Count) missing.Add($"ip6 guard rules: {guard}");
        if (missing.Count == 0) return "all";
        var present = Ours(v4).Concat(Ours6(v6)).ToList();
        return present.Count == 0 ? "none" : $"partial: missing {string.Join(", ", missing)}; present {string.Join(" | ", present)}";
    }

    /// <summary>iptables-restore and ip6tables-restore behind scripts that keep a copy of every batch they are given.</summary>
    private sealed class RecordedRestore : IDisposable
    {
        private readonly string _dir = TestPaths.NewTempDir("fw-batches");

        public RecordedRestore()
        {
            Restore = Wrap("iptables-restore");
            Restore6 = Wrap("ip6tables-restore");
        }

        public string Restore { get; }
        public string Restore6 { get; }

        private string Wrap(string tool)
        {
            var script = Path.Combine(_dir, tool);
            // called as: TOOL --noflush -w 10 FILE
            File.WriteAllText(script, $"#!/bin/sh\n{{ cat \"$4\"; echo '#END'; }} >> {_dir}/{tool}.log\nexec {Command.Resolve(tool)} \"$@\"\n");
            File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
            return script;
        }

        private List<string> Read(string tool)
        {
            var log = Path.Combine(_dir, tool + ".log");
            return File.Exists(log) ? [.. File.ReadAllText(log).Split("#END\n", StringSplitOptions.RemoveEmptyEntries)] : [];
        }

        public List<string> Batches() => Read("iptables-restore");
        public List<string> Batches6() => Read("ip6tables-restore");
        public void Clear() { foreach (var f in Directory.GetFiles(_dir, "*.log")) File.Delete(f); }
        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }

    [GatedFact]
    public async Task The_connection_tracking_table_is_raised_once_the_rules_that_track_are_in()
    {
        // on a host where nothing tracked flows before gardend, the kernel makes the table (and its nf_conntrack_max) only
        // with the first rule that tracks: the start's raise found nothing, the first Apply raises it, never lowers it
        using var recorded = new RecordedRestore();
        var max = Path.Combine(Path.GetTempPath(), $"garden-test-conntrack-{Guid.NewGuid():N}");
        File.WriteAllText(max, "1000\n");
        var fw = new IptablesFirewall(new FirewallOptions(Prefix, [], [], ConntrackFloor: 5000), iptablesRestore: recorded.Restore,
            ip6tablesRestore: recorded.Restore6, conntrackMax: max);
        var n = Net("ct", 25);
        try
        {
            Assert.Equal("1000", File.ReadAllText(max).Trim());
            await fw.ApplyAsync(new ContainerFirewall(n, [], []), default);
            Assert.Equal("5000", File.ReadAllText(max).Trim());
            File.WriteAllText(max, "9000\n");
            var next = new IptablesFirewall(new FirewallOptions(Prefix, [], [], ConntrackFloor: 5000), iptablesRestore: recorded.Restore,
                ip6tablesRestore: recorded.Restore6, conntrackMax: max);
            await next.ApplyAsync(new ContainerFirewall(n, [], []), default);
            Assert.Equal("9000", File.ReadAllText(max).Trim());
        }
        finally
        {
            await fw.RemoveAsync(n, default);
            await fw.ReleaseSharedAsync(default);
            File.Delete(max);
        }
    }

    [GatedFact]
    public async Task Removals_that_queue_behind_one_another_go_in_one_batch()
    {
        using var recorded = new RecordedRestore();
        var fw = new IptablesFirewall(new FirewallOptions(Prefix, [], []), iptablesRestore: recorded.Restore, ip6tablesRestore: recorded.Restore6);
        var keep = Net("keep", 20);
        var gone = new[] { Net("g1", 21), Net("g2", 22), Net("g3", 23), Net("g4", 24) };
        try
        {
            await fw.ApplyAsync(new ContainerFirewall(keep, [new PortMapping(41020, 80)], []), default);
            foreach (var (n, i) in gone.Select((n, i) => (n, i)))
                await fw.ApplyAsync(new ContainerFirewall(n, [new PortMapping(41021 + i, 80)], [Tcp("10.1.0.0/24", 80)]), default);
            recorded.Clear();

            // four destroys at once: the first takes the lock, the three that queue behind it go together
            await Task.WhenAll(gone.Select(n => fw.RemoveAsync(n, default)));
            var batches = recorded.Batches();
            Assert.Equal(2, batches.Count);
            Assert.Equal(3, gone.Count(n => batches[1].Contains($"-X {n.OutChain}")));
            var left = Ours(await Save());
            foreach (var n in gone)
            {
                Assert.DoesNotContain(left, l => l.Contains(n.OutChain) || l.Contains(n.NatChain));
                await fw.RemoveAsync(n, default); // idempotent: nothing of it left, no batch
            }
            Assert.Equal(2, recorded.Batches().Count);
            Assert.Equal(["keep"], await fw.InstalledAsync(default));
            Assert.Contains(left, l => l.Contains(keep.OutChain));
        }
        finally
        {
            foreach (var n in gone.Append(keep)) await fw.RemoveAsync(n, default);
            await fw.ReleaseSharedAsync(default);
        }
    }

    [GatedFact]
    public async Task Applies_that_queue_behind_one_another_go_in_one_batch_each_container_with_its_own_tables()
    {
        using var recorded = new RecordedRestore();
        var fw = new IptablesFirewall(new FirewallOptions(Prefix, [], []), iptablesRestore: recorded.Restore, ip6tablesRestore: recorded.Restore6);
        var first = Net("q0", 30);
        var queued = new[] { Net("q1", 31), Net("q2", 32), Net("q3", 33) };
        ContainerFirewall Rules(ContainerNetwork n, int i) => i % 2 == 1
            ? new ContainerFirewall(n, [new PortMapping(41031 + i, 80)], [Tcp("10.1.0.0/24", 80)])
            : new ContainerFirewall(n, [], []);
        try
        {
            // four Creates at once: the first takes the lock, the three that queue behind it go together
            await Task.WhenAll(new[] { first }.Concat(queued).Select((n, i) => fw.ApplyAsync(Rules(n, i), default)));
            var batches = recorded.Batches();
            Assert.Equal(2, batches.Count);
            Assert.Equal(3, queued.Count(n => batches[1].Contains($":{n.OutChain} ")));
            // one without NetIn gets no nat chain of its own in the batch it shares with one that has NetIn
            Assert.Contains($":{queued[0].NatChain} ", batches[1]);
            Assert.DoesNotContain(queued[1].NatChain, batches[1]);
            Assert.Equal(["q0", "q1", "q2", "q3"], (await fw.InstalledAsync(default)).Order());
            var saved = await Save();
            Assert.Contains($":{queued[0].NatChain} ", saved);
            Assert.DoesNotContain(queued[1].NatChain, saved);
            // what the kernel holds is what each asked for: a restarted daemon finds every one intact
            var fresh = new IptablesFirewall(new FirewallOptions(Prefix, [], []));
            foreach (var (n, i) in new[] { first }.Concat(queued).Select((n, i) => (n, i)))
                Assert.False(await fresh.EnsureAsync(Rules(n, i), default), n.Handle);
        }
        finally
        {
            foreach (var n in queued.Prepend(first)) await fw.RemoveAsync(n, default);
            await fw.ReleaseSharedAsync(default);
        }
    }

    [GatedFact]
    public async Task A_batch_of_applies_that_fails_is_applied_one_by_one_and_only_the_failing_container_hears_of_it()
    {
        // iptables-restore that refuses any batch with the chain of "bad" in it (a rule the kernel will not take)
        var dir = TestPaths.NewTempDir("fw-refuse");
        var bad = Net("bad", 41);
        var good = new[] { Net("ok1", 42), Net("ok2", 43) };
        var blocker = Net("blk", 40);
        var script = Path.Combine(dir, "iptables-restore");
        File.WriteAllText(script, $"#!/bin/sh\nif grep -q '{bad.OutChain}' \"$4\"; then echo 'iptables-restore: line 3 failed' >&2; exit 1; fi\n" +
            $"exec {Command.Resolve("iptables-restore")} \"$@\"\n");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        var fw = new IptablesFirewall(new FirewallOptions(Prefix, [], []), iptablesRestore: script);
        try
        {
            // the three queue behind the first and go in one batch, which fails for the bad one's sake
            var first = fw.ApplyAsync(new ContainerFirewall(blocker, [], []), default);
            var all = good.Prepend(bad).Select(n => fw.ApplyAsync(new ContainerFirewall(n, [], []), default)).ToList();
            await first;
            var e = await Assert.ThrowsAsync<FirewallException>(() => all[0]);
            Assert.Contains("line 3 failed", e.Message);
            await Task.WhenAll(all.Skip(1));
            Assert.Equal(["blk", "ok1", "ok2"], (await fw.InstalledAsync(default)).Order());
        }
        finally
        {
            foreach (var n in good.Append(bad).Append(blocker)) await fw.RemoveAsync(n, default);
            await fw.ReleaseSharedAsync(default);
            Directory.Delete(dir, recursive: true);
        }
    }

    [GatedFact]
    public async Task Destroying_the_last_container_is_one_batch_of_its_own_entries_and_chains_and_leaves_the_shared_chains_alone()
    {
        using var recorded = new RecordedRestore();
        var fw = new IptablesFirewall(new FirewallOptions(Prefix, [], []), iptablesRestore: recorded.Restore, ip6tablesRestore: recorded.Restore6);
        var a = Net("last", 14);
        var b = Net("next", 15);
        try
        {
            await fw.ApplyAsync(new ContainerFirewall(a, [new PortMapping(41007, 80)], [Tcp("10.1.0.0/24", 80)]), default);
            Assert.Single(recorded.Batches());
            Assert.Single(recorded.Batches6()); // the guard is made with the first container's rules
            var before = Ours(await Save()).Where(l => !l.Contains("--comment last") && !l.Contains(a.OutChain) && !l.Contains(a.NatChain)).ToList();
            var guard = Ours6(await Save6());
            recorded.Clear();

            await fw.RemoveAsync(a, default);
            var batch = Assert.Single(recorded.Batches());
            Assert.Empty(recorded.Batches6());
            Assert.Contains($"-X {a.OutChain}", batch);
            Assert.Contains($"-X {a.NatChain}", batch);
            Assert.Contains($"-D {Prefix}-forward ", batch);
            foreach (var (_, builtin, suffix) in FirewallRules.Hooks)
            {
                Assert.DoesNotContain($"-j {Prefix}-{suffix}\n", batch); // no jump deleted or made
                Assert.DoesNotContain($":{Prefix}-{suffix} ", batch); // no shared chain flushed or declared
                Assert.DoesNotContain($"-X {Prefix}-{suffix}\n", batch);
                Assert.DoesNotContain(builtin, batch);
            }
            // What is left is the shared chains with exactly their fixed rules, and the IPv6 guard as it was.
            Assert.Equal(before, Ours(await Save()));
            Assert.Equal(guard, Ours6(await Save6()));
            Assert.Equal("all", await SharedAsync());

            // The next first container: one batch that inserts its entries into the chains that are there.
            recorded.Clear();
            await fw.ApplyAsync(new ContainerFirewall(b, [], []), default);
            batch = Assert.Single(recorded.Batches());
            Assert.Empty(recorded.Batches6());
            Assert.DoesNotContain($":{Prefix}-forward ", batch);
            Assert.Contains($"-I {Prefix}-forward ", batch);
            await fw.RemoveAsync(b, default);

            recorded.Clear();
            Assert.True(await fw.ReleaseSharedAsync(default));
            Assert.Single(recorded.Batches());
            Assert.Single(recorded.Batches6());
            Assert.Empty(Ours(await Save()));
            Assert.Empty(Ours6(await Save6()));
        }
        finally
        {
            await fw.RemoveAsync(a, default);
            await fw.RemoveAsync(b, default);
            await fw.ReleaseSharedAsync(default);
        }
    }

    private List<string> Ours(string save) => save.Split('\n').Where(l => l.Contains(Prefix + "-") || l.Contains(Prefix + "b+")).ToList();

    [GatedFact]
    public async Task Rules_are_commented_with_the_handle_in_chains_of_our_own_and_Release_after_the_last_removal_leaves_nothing()
    {
        var n = Net("web", 4);
        await Firewall.ApplyAsync(new ContainerFirewall(n, [new PortMapping(41001, 8080)],
            [Tcp("10.1.0.0/24", 80), new NetOutRule(NetProtocol.Icmp, [], [], 8, 0, Log: true)]), default);
        var save = await Save();
        Assert.Contains($"-A FORWARD -j {Prefix}-forward", save);
        Assert.Contains($"-A PREROUTING -j {Prefix}-prerouting", save);
        Assert.Contains($"-A {n.NatChain} -p tcp -m tcp --dport 41001 -m comment --comment web -j DNAT --to-destination {n.Address}:8080", save);
        Assert.Contains($"-A {n.OutChain} -d 10.1.0.0/24 -p tcp -m tcp --dport 80 -m comment --comment web -j ACCEPT", save);
        Assert.Contains($"-A {n.OutChain} -p icmp -m icmp --icmp-type 8/0 -m conntrack --ctstate NEW -m comment --comment web -j LOG", save);
        // its share of the host's flows first, then operator deny before operator allow, which comes before the
        // container's rules; REJECT last
        var chain = save.Split('\n').Where(l => l.StartsWith($"-A {n.OutChain} ")).ToList();
        Assert.Contains("-m connlimit --connlimit-above 4096 --connlimit-mask 32 --connlimit-saddr", chain[1]);
        Assert.Contains("10.9.9.0/24", chain[2]);
        Assert.Contains("10.9.0.0/16", chain[3]);
        Assert.Contains("REJECT", chain[^1]);
        Assert.All(Ours(save).Where(l => l.StartsWith("-A ") && l.Contains(n.Address.ToString())), l => Assert.Contains("--comment web", l));

        await Firewall.RemoveAsync(n, default);
        // Nothing of the container is left; the shared chains stay while gardend runs, and go with Release.
        Assert.DoesNotContain(Ours(await Save()), l => l.Contains("web") || l.Contains(n.OutChain) || l.Contains(n.NatChain) || l.Contains(n.Address.ToString()));
        Assert.Equal("all", await SharedAsync());
        Assert.True(await Firewall.ReleaseSharedAsync(default));
        Assert.Empty(Ours(await Save()));
        Assert.Empty(Ours6(await Save6()));
    }

    private Task<string> Save6() => TestNet.Sh("ip6tables-save -t filter");

    private List<string> Ours6(string save) => save.Split('\n').Where(l => l.Contains(Prefix + "-") || l.Contains(Prefix + ":")).ToList();

    [GatedFact]
    public async Task The_IPv6_guard_drops_everything_of_our_links_stays_after_the_last_container_and_goes_with_Release()
    {
        var a = Net("six-a", 8);
        var b = Net("six-b", 9);
        Assert.Empty(Ours6(await Save6()));
        await Firewall.ApplyAsync(new ContainerFirewall(a, [], []), default);
        await Firewall.ApplyAsync(new ContainerFirewall(b, [], []), default);
        var save = await Save6();
        foreach (var (builtin, chain) in new[] { ("INPUT", "input"), ("FORWARD", "forward"), ("OUTPUT", "output") })
            Assert.Contains($"-A {builtin} -j {Prefix}-{chain}", save);
        foreach (var i in new[] { "b+", "v+" })
        {
            Assert.Contains($"-A {Prefix}-input -i {Prefix}{i} -m comment --comment \"{Prefix}:no-ipv6\" -j DROP", save);
            Assert.Contains($"-A {Prefix}-forward -i {Prefix}{i} -m comment --comment \"{Prefix}:no-ipv6\" -j DROP", save);
            Assert.Contains($"-A {Prefix}-forward -o {Prefix}{i} -m comment --comment \"{Prefix}:no-ipv6\" -j DROP", save);
            Assert.Contains($"-A {Prefix}-output -o {Prefix}{i} -m comment --comment \"{Prefix}:no-ipv6\" -j DROP", save);
        }
        // The IPv4 input chain drops a container's traffic to the host's loopback before anything accepts it.
        var input = (await Save()).Split('\n').Where(l => l.StartsWith($"-A {Prefix}-input ")).ToList();
        Assert.Equal($"-A {Prefix}-input -s 127.0.0.0/8 -i {Prefix}b+ -m comment --comment \"{Prefix}:host-loopback\" -j DROP", input[0]);
        Assert.Equal($"-A {Prefix}-input ! -s 127.0.0.0/8 -d 127.0.0.0/8 -i {Prefix}b+ -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT " +
            $"-m comment --comment \"{Prefix}:host-loopback\" -j DROP", input[1]);
        Assert.Contains($"-A {Prefix}-input ! -s 127.0.0.0/8 -d 127.0.0.0/8 -i {Prefix}v+ -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT " +
            $"-m comment --comment \"{Prefix}:host-loopback\" -j DROP", input);
        Assert.DoesNotContain($"{Prefix}:host-loopback", await Firewall.InstalledAsync(default)); // a fixed rule, not a handle

        // Lost (an operator's flush): a restarted daemon's Ensure puts it back.
        await TestNet.Sh($"ip6tables -F {Prefix}-input");
        var next = new IptablesFirewall(new FirewallOptions(Prefix, [], []));
        await next.InstalledAsync(default);
        Assert.True(await next.EnsureAsync(new ContainerFirewall(a, [], []), default));
        Assert.Equal(save.Split('\n').Where(l => l.StartsWith("-A")).Order(), (await Save6()).Split('\n').Where(l => l.StartsWith("-A")).Order());

        await next.RemoveAsync(a, default);
        Assert.NotEmpty(Ours6(await Save6()));
        await next.RemoveAsync(b, default);
        Assert.Equal(save.Split('\n').Where(l => l.StartsWith("-A")).Order(), (await Save6()).Split('\n').Where(l => l.StartsWith("-A")).Order());
        Assert.True(await next.ReleaseSharedAsync(default));
        Assert.Empty(Ours6(await Save6()));
    }

    [GatedFact]
    public async Task A_guard_left_without_containers_is_removed_by_Prune()
    {
        var a = Net("left", 10);
        await Firewall.ApplyAsync(new ContainerFirewall(a, [], []), default);
        var next = new IptablesFirewall(new FirewallOptions(Prefix, [], [])); // a restarted daemon whose container is gone
        Assert.Equal(["left"], await next.PruneAsync(new HashSet<string>(), default));
        Assert.Empty(Ours(await Save()));
        Assert.Empty(Ours6(await Save6()));
        Assert.Empty(await next.PruneAsync(new HashSet<string>(), default));
    }

    [GatedFact]
    public async Task Jumps_a_second_daemon_of_the_same_prefix_doubled_are_all_removed_by_Prune()
    {
        var a = Net("twice", 11);
        await Firewall.ApplyAsync(new ContainerFirewall(a, [], []), default);
        // what a second gardend given the same prefix leaves: every jump into the shared chains and the IPv6 guard twice
        foreach (var (table, builtin, suffix) in FirewallRules.Hooks)
            await TestNet.Sh($"iptables -t {table} -I {builtin} 1 -j {Prefix}-{suffix}");
        foreach (var (builtin, suffix) in Ip6Rules.Hooks)
            await TestNet.Sh($"ip6tables -I {builtin} 1 -j {Prefix}-{suffix}");
        var next = new IptablesFirewall(new FirewallOptions(Prefix, [], [])); // a restarted daemon whose container is gone
        Assert.Equal(["twice"], await next.PruneAsync(new HashSet<string>(), default));
        Assert.Empty(Ours(await Save()));
        Assert.Empty(Ours6(await Save6()));
    }

    [GatedFact]
    public async Task A_container_of_the_pool_without_NetIn_has_no_nat_rule_and_gets_its_DNAT_chain_with_a_NetIn()
    {
        var n = Net("pooled", 7);
        var pooled = new IptablesFirewall(new FirewallOptions(Prefix, [], [], Ipv4Cidr.Of(n.Address, 16)));
        await pooled.ApplyAsync(new ContainerFirewall(n, [], []), default);
        var nat = await TestNet.Sh("iptables-save -t nat");
        Assert.DoesNotContain("--comment pooled", nat);
        Assert.DoesNotContain(n.NatChain, nat);
        Assert.Contains($"-A {Prefix}-postrouting -s {Ipv4Cidr.Of(n.Address, 16)} ! -o {Prefix}v+ -j MASQUERADE", nat);
        Assert.False(await pooled.EnsureAsync(new ContainerFirewall(n, [], []), default));

        await pooled.ApplyAsync(new ContainerFirewall(n, [new PortMapping(41004, 80)], []), default);
        Assert.Contains($"-A {n.NatChain} -p tcp -m tcp --dport 41004 -m comment --comment pooled -j DNAT", await TestNet.Sh("iptables-save -t nat"));
        await pooled.RemoveAsync(n, default);
        Assert.True(await pooled.ReleaseSharedAsync(default));
        Assert.Empty(Ours(await Save()));
    }

    [GatedFact]
    public async Task A_fresh_instance_reads_what_the_kernel_holds_and_a_flushed_chain_is_rebuilt_by_Apply()
    {
        var n = Net("keep", 5);
        var rules = new ContainerFirewall(n, [new PortMapping(41002, 80)], []);
        await Firewall.ApplyAsync(rules, default);
        await TestNet.Sh($"iptables -F {n.OutChain}; iptables -N {Prefix}-o-deadbeef");
        var next = new IptablesFirewall(new FirewallOptions(Prefix, [], [])); // a restarted daemon
        Assert.Contains("keep", await next.InstalledAsync(default));
        await next.ApplyAsync(rules, default);
        Assert.Contains($"-A {n.OutChain} -m comment --comment keep -j REJECT", await Save());
        await next.PruneAsync(new HashSet<string> { "keep" }, default);
        Assert.DoesNotContain($"{Prefix}-o-deadbeef", await Save());
        await next.RemoveAsync(n, default);
        Assert.True(await next.ReleaseSharedAsync(default));
        Assert.Empty(Ours(await Save()));
    }

    [GatedFact]
    public async Task Release_keeps_the_shared_chains_while_a_container_has_a_chain_of_its_own_left()
    {
        var n = Net("half", 16);
        await Firewall.ApplyAsync(new ContainerFirewall(n, [], []), default);
        // An operator flushes the shared chains: the container's entries there are gone, its own chain is not.
        await TestNet.Sh($"iptables -F {Prefix}-forward; iptables -F {Prefix}-input; iptables -t nat -F {Prefix}-postrouting");
        Assert.DoesNotContain("half", await Firewall.InstalledAsync(default));
        Assert.False(await Firewall.ReleaseSharedAsync(default));
        Assert.Contains($":{n.OutChain} ", await Save());
        Assert.Contains($"-A FORWARD -j {Prefix}-forward", await Save());
        await Firewall.RemoveAsync(n, default);
        Assert.True(await Firewall.ReleaseSharedAsync(default));
        Assert.Empty(Ours(await Save()));
        Assert.Empty(Ours6(await Save6()));
    }
}

public sealed class FakeFirewallContract : FirewallContract
{
    private readonly FakeFirewall _fake = new(new CallLog());
    protected override IFirewall Firewall => _fake;

    protected override Task LoseRulesAsync(ContainerNetwork n)
    {
        _fake.Flush(n.Handle);
        return Task.CompletedTask;
    }

    protected override Task<string> SharedAsync() => Task.FromResult(_fake.SharedExist ? "all" : "none");
}

/// <summary>The text of the batches, without a kernel.</summary>
public sealed class FirewallRulesTests
{
    private static readonly ContainerNetwork Net = new("h1", "ga", Ipv4Cidr.Of(Ipv4.Parse("10.254.0.4", "t"), 30), Ipv4.Parse("10.254.0.6", "t"), 1500);

    [Fact]
    public void A_batch_parses_back_to_the_entries_it_was_made_from()
    {
        var options = new FirewallOptions("ga", [], []);
        var batch = FirewallRules.Batch(options, new FirewallRules.Plan
        {
            CreateShared = true, Entries = [FirewallRules.EntryFor(Net)], Apply = [new ContainerFirewall(Net, [], [])],
        });
        var state = FirewallRules.Parse("ga", batch.Replace("-I FORWARD 1 -j ga-forward", "-A FORWARD -j ga-forward"));
        Assert.Equal(["h1"], state.Entries.Keys);
        Assert.Equal("ga-o-0afe0006", state.Entries["h1"].OutChain);
        Assert.Equal("ga-n-0afe0006", state.Entries["h1"].NatChain);
        Assert.Contains("FORWARD", state.JumpsPresent);
        Assert.Contains("ga-o-0afe0006", state.Chains);
    }

    [Fact]
    public void A_change_to_one_container_inserts_or_deletes_its_entries_and_leaves_the_shared_chains_unflushed()
    {
        var entry = FirewallRules.EntryFor(Net);
        var jumps = FirewallRules.Hooks.Select(h => h.Builtin).ToHashSet();
        var add = FirewallRules.Batch(new FirewallOptions("ga", [], []), new FirewallRules.Plan
        {
            Insert = [entry], Apply = [new ContainerFirewall(Net, [], [])], JumpsPresent = jumps,
        });
        Assert.DoesNotContain(":ga-forward", add);
        // After the fixed head of the chain (its loopback drop and the accepts of replies), before the other entries.
        Assert.Contains("-I ga-forward 7 -s 10.254.0.6/32 -i gav0afe0006 -m comment --comment h1 -j ga-o-0afe0006", add);
        Assert.Contains("-I ga-input 7 -s 10.254.0.6/32 -i gav0afe0006 -m comment --comment h1 -j ga-o-0afe0006", add);
        Assert.Contains("-I ga-postrouting 1 -s 10.254.0.6/32", add);
        Assert.Contains(":ga-o-0afe0006 - [0:0]", add);
        Assert.DoesNotContain("-I FORWARD", add);
        var remove = FirewallRules.Batch(new FirewallOptions("ga", [], []), new FirewallRules.Plan
        {
            Delete = [entry], Remove = [(Net.OutChain, Net.NatChain)], JumpsPresent = jumps,
        });
        Assert.DoesNotContain(":ga-forward", remove);
        Assert.Contains("-D ga-postrouting -s 10.254.0.6/32 ! -o gav0afe0006 -m comment --comment h1 -j MASQUERADE", remove);
        Assert.Contains("-X ga-n-0afe0006", remove);
    }

    [Fact]
    public void Ranges_that_are_one_CIDR_use_d_and_others_use_iprange()
    {
        var f = new ContainerFirewall(Net, [], [
            new NetOutRule(NetProtocol.Udp, [Ipv4Range.Parse("10.0.0.0-10.0.0.255", "t"), Ipv4Range.Parse("10.0.0.1-10.0.0.5", "t")],
                [new PortRange(53, 53), new PortRange(1000, 2000)]),
        ]);
        var lines = FirewallRules.OutRules(new FirewallOptions("ga", [], []), f).ToList();
        Assert.Contains("-A ga-o-0afe0006 -p udp -d 10.0.0.0/24 -m udp --dport 53 -m comment --comment h1 -j ACCEPT", lines);
        Assert.Contains("-A ga-o-0afe0006 -p udp -m iprange --dst-range 10.0.0.1-10.0.0.5 -m udp --dport 1000:2000 -m comment --comment h1 -j ACCEPT", lines);
        Assert.Equal(7, lines.Count); // established, its share of the host's flows, four accepts, reject
        Assert.Equal("-A ga-o-0afe0006 -m conntrack --ctstate NEW -m connlimit --connlimit-above 4096 --connlimit-mask 32 --connlimit-saddr " +
            "-m comment --comment h1 -j REJECT --reject-with icmp-port-unreachable", lines[1]);
    }

    [Fact]
    public void The_input_chain_drops_traffic_to_and_from_127_0_0_0_8_of_our_links_before_any_accept_and_fixed_rules_are_no_entries()
    {
        var batch = FirewallRules.Batch(new FirewallOptions("ga", [], []), new FirewallRules.Plan
        {
            CreateShared = true, Entries = [FirewallRules.EntryFor(Net)], Apply = [new ContainerFirewall(Net, [], [])],
        });
        var input = batch.Split('\n').Where(l => l.StartsWith("-A ga-input ")).ToList();
        Assert.Equal("-A ga-input -i gab+ -s 127.0.0.0/8 -m comment --comment ga:host-loopback -j DROP", input[0]);
        Assert.Equal("-A ga-input -i gab+ ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT " +
            "-m comment --comment ga:host-loopback -j DROP", input[1]);
        Assert.Equal(4, input.Take(4).Count(l => l.Contains("127.0.0.0/8") && l.EndsWith("-j DROP")));
        Assert.DoesNotContain("ACCEPT", string.Concat(input.Take(4)));
        var forward = batch.Split('\n').Where(l => l.StartsWith("-A ga-forward ")).ToList();
        Assert.Equal("-A ga-forward -i gab+ -s 127.0.0.0/8 -m comment --comment ga:host-loopback -j DROP", forward[0]);
        // As iptables-save shows them (a comment with a colon is quoted): never taken for a container's entry.
        var state = FirewallRules.Parse("ga", batch.Replace("--comment ga:host-loopback", "--comment \"ga:host-loopback\""));
        Assert.Equal(["h1"], state.Entries.Keys);
        Assert.Equal(2, state.Entries["h1"].Filter.Count);
    }

    [Fact]
    public void The_IPv6_guard_is_built_parsed_and_removed()
    {
        Assert.False(Ip6Rules.Intact("ga", Ip6Rules.KernelState.Empty));
        var install = Ip6Rules.Install("ga", Ip6Rules.KernelState.Empty);
        Assert.Contains("-I INPUT 1 -j ga-input", install);
        Assert.Contains("-I FORWARD 1 -j ga-forward", install);
        Assert.Contains("-I OUTPUT 1 -j ga-output", install);
        Assert.Contains("-A ga-input -i gav+ -m comment --comment ga:no-ipv6 -j DROP", install);
        Assert.Contains("-A ga-forward -o gab+ -m comment --comment ga:no-ipv6 -j DROP", install);
        var saved = install.Replace("-I INPUT 1", "-A INPUT").Replace("-I FORWARD 1", "-A FORWARD").Replace("-I OUTPUT 1", "-A OUTPUT");
        var state = Ip6Rules.Parse("ga", saved);
        Assert.True(Ip6Rules.Intact("ga", state));
        Assert.Equal(["FORWARD", "INPUT", "OUTPUT"], state.JumpsPresent.Order());
        Assert.Equal(["ga-forward", "ga-input", "ga-output"], state.Chains.Order());
        Assert.Equal(8, state.RuleCount);
        // A lost jump is put back without doubling the others.
        var lost = Ip6Rules.Parse("ga", saved.Replace("-A FORWARD -j ga-forward\n", ""));
        Assert.False(Ip6Rules.Intact("ga", lost));
        var again = Ip6Rules.Install("ga", lost);
        Assert.Contains("-I FORWARD 1 -j ga-forward", again);
        Assert.DoesNotContain("-I INPUT", again);
        var remove = Ip6Rules.Remove("ga", lost);
        Assert.Contains("-D INPUT -j ga-input", remove);
        Assert.DoesNotContain("-D FORWARD", remove);
        Assert.Contains("-X ga-forward", remove);
    }

    [Fact]
    public void Without_shared_chains_a_removal_deletes_only_the_containers_own_chains_and_makes_no_jump()
    {
        var batch = FirewallRules.Batch(new FirewallOptions("ga", [], []), new FirewallRules.Plan
        {
            NoShared = true, Remove = [(Net.OutChain, null)],
        });
        Assert.Equal("*filter\n:ga-o-0afe0006 - [0:0]\n-X ga-o-0afe0006\nCOMMIT\n", batch);
    }

    [Fact]
    public void Releasing_the_shared_chains_deletes_them_and_the_jumps_that_exist()
    {
        var batch = FirewallRules.Batch(new FirewallOptions("ga", [], []), new FirewallRules.Plan
        {
            RemoveShared = true, Remove = [(Net.OutChain, Net.NatChain)], JumpsPresent = new HashSet<string> { "FORWARD" },
        });
        Assert.Contains("-D FORWARD -j ga-forward", batch);
        Assert.DoesNotContain("-D INPUT", batch);
        Assert.Contains("-X ga-forward", batch);
        Assert.Contains("-X ga-o-0afe0006", batch);
    }
}
