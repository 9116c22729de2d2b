using System.Net;
using System.Net.NetworkInformation;
using Garden.Linux.Network;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The raw-packet attacks of issue 9 (items 4 and 5) against a container network made by the real plumbing and
/// firewall, one layer at a time: each test first shows the attack reaching a host listener where the layer under test
/// is missing (so the probe can see a success), then that the layer stops it. The attack runs in the container's network
/// namespace (`ip netns exec`), as root with CAP_NET_RAW would in a container.</summary>
public sealed class NetworkEscapeTests : IAsyncLifetime
{
    private readonly string _prefix;
    private readonly ContainerNetwork _n;
    private readonly ContainerNetwork _other;
    private readonly IpPlumbing _plumbing = new();
    private readonly IptablesFirewall _firewall;

    /// <summary>Cloud Foundry's default public-networks rule: everything but the private ranges (127/8 falls inside).</summary>
    public static readonly NetOutRule PublicNetworks = new(NetProtocol.All,
    [
        Ipv4Range.Parse("0.0.0.0-9.255.255.255", "t"), Ipv4Range.Parse("11.0.0.0-169.253.255.255", "t"),
        Ipv4Range.Parse("169.255.0.0-172.15.255.255", "t"), Ipv4Range.Parse("172.32.0.0-192.167.255.255", "t"),
        Ipv4Range.Parse("192.169.0.0-255.255.255.255", "t"),
    ], []);

    public NetworkEscapeTests()
    {
        int block;
        (_prefix, block) = TestNet.Next();
        _n = TestNet.Net(_prefix, block, "victim", 0);
        _other = TestNet.Net(_prefix, block, "other", 1);
        _firewall = new IptablesFirewall(new FirewallOptions(_prefix, [], []));
    }

    public Task InitializeAsync() => _plumbing.SetUpAsync(_n, default);

    public async Task DisposeAsync()
    {
        await _firewall.RemoveAsync(_n, default);
        await _firewall.RemoveAsync(_other, default);
        await _plumbing.TearDownAsync(_n, default);
        await _firewall.ReleaseSharedAsync(default); // the shared chains and the IPv6 guard, as gardend does when it stops
    }

    private Task<CommandResult> Attack(string dst, int port) =>
        Command.RunAsync("/usr/sbin/ip", ["netns", "exec", _n.Netns, AttackTool.Path("rawsyn"), dst, port.ToString()]);

    [RootFact]
    public async Task A_raw_SYN_to_127_0_0_1_reaches_a_loopback_service_without_the_firewall_and_nothing_with_it()
    {
        using var listener = new ProbeListener(IPAddress.Loopback);

        // Control: the plumbing alone (route_localnet=1 for NetIn from loopback) lets the frame in, and the probe sees it.
        var open = await Attack("127.0.0.1", listener.Port);
        Assert.True(open.ExitCode == 0, open.ToString());
        Assert.Contains("SYN-ACK from 127.0.0.1", open.Stdout);
        Assert.Contains(await listener.WaitAsync(TimeSpan.FromSeconds(5)), s => s.EndsWith(": garden-attack\n"));

        // The container's rules, with a NetOut rule that covers 127.0.0.1 as Cloud Foundry's default one does; another
        // container's rules first, so that the victim's entries are inserted into existing chains, not built with them.
        await _firewall.ApplyAsync(new ContainerFirewall(_other, [], []), default);
        await _firewall.ApplyAsync(new ContainerFirewall(_n, [], [PublicNetworks]), default);
        using var after = new ProbeListener(IPAddress.Loopback);
        var closed = await Attack("127.0.0.1", after.Port);
        Assert.True(closed.ExitCode == 1, closed.ToString());
        Assert.Contains("no answer", closed.Stdout);
        Assert.Empty(await after.WaitAsync(TimeSpan.FromSeconds(1)));
    }

    [RootFact]
    public async Task IPv6_to_the_host_is_dropped_by_the_plumbing_and_by_the_firewall_each_on_its_own()
    {
        using var listener = new ProbeListener(IPAddress.IPv6Any);
        var hv = _n.HostVeth;
        var linkLocal = LinkLocal(File.ReadAllText($"/sys/class/net/{hv}/address").Trim());

        // No IPv6 on either end: no address, IPv6 off on the host's end and in the container's namespace.
        Assert.Equal("", (await Command.RunAsync("/usr/sbin/ip", ["-6", "-o", "addr", "show", "dev", hv])).Stdout);
        Assert.Equal("1", File.ReadAllText($"/proc/sys/net/ipv6/conf/{hv}/disable_ipv6").Trim());
        var inside = await Command.RunAsync("/usr/sbin/ip", ["netns", "exec", _n.Netns, "/bin/sh", "-c",
            "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; ip -6 -o addr show dev eth0"]);
        Assert.Equal("1\n1\n", inside.Stdout);
        var refused = await Attack(linkLocal, listener.Port);
        Assert.True(refused.ExitCode == 1, refused.ToString());

        // Control: the host's end as an older build made it (IPv6 on, a link-local address): the attack gets through.
        await Sysctl(hv, "accept_dad", "0");
        Assert.Equal(0, (await Command.RunAsync("/usr/sbin/ip", ["link", "set", hv, "addrgenmode", "eui64"])).ExitCode);
        await Sysctl(hv, "disable_ipv6", "0");
        Assert.Contains(linkLocal, (await Command.RunAsync("/usr/sbin/ip", ["-6", "-o", "addr", "show", "dev", hv])).Stdout);
        var open = await Attack(linkLocal, listener.Port);
        Assert.True(open.ExitCode == 0, open.ToString());
        Assert.Contains(await listener.WaitAsync(TimeSpan.FromSeconds(5)), s => s.EndsWith(": garden-attack\n"));

        // The firewall's IPv6 guard alone stops it.
        await _firewall.ApplyAsync(new ContainerFirewall(_n, [], [PublicNetworks]), default);
        using var after = new ProbeListener(IPAddress.IPv6Any);
        var guarded = await Attack(linkLocal, after.Port);
        Assert.True(guarded.ExitCode == 1, guarded.ToString());
        Assert.Empty(await after.WaitAsync(TimeSpan.FromSeconds(1)));
    }

    private static Task Sysctl(string link, string name, string value) =>
        File.WriteAllTextAsync($"/proc/sys/net/ipv6/conf/{link}/{name}", value);

    /// <summary>The EUI-64 link-local address the kernel gives a link with this MAC.</summary>
    public static string LinkLocal(string mac)
    {
        var b = PhysicalAddress.Parse(mac.Replace(':', '-').ToUpperInvariant()).GetAddressBytes();
        var a = new byte[16];
        a[0] = 0xfe; a[1] = 0x80;
        a[8] = (byte)(b[0] ^ 2); a[9] = b[1]; a[10] = b[2]; a[11] = 0xff; a[12] = 0xfe; a[13] = b[3]; a[14] = b[4]; a[15] = b[5];
        return new IPAddress(a).ToString();
    }
}
