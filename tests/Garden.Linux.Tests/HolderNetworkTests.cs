using System.Diagnostics;
using Garden.Linux.Network;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The default container's network: a /30 in the network namespace of its user namespace holder (here a
/// process in a network namespace of its own, as the holder is). gardend makes it over rtnetlink; `ip -batch` makes it
/// for every other shape. Both must leave the same network, checked here through `ip` and /proc from outside.</summary>
[RequiresRoot]
public sealed class HolderNetworkTests : IAsyncLifetime
{
    private readonly string _prefix;
    private readonly int _block;
    private readonly List<(IpPlumbing Plumbing, ContainerNetwork Network)> _made = [];
    private readonly List<System.Diagnostics.Process> _holders = [];

    public HolderNetworkTests() => (_prefix, _block) = TestNet.Next();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var h in _holders)
        {
            if (!h.HasExited) h.Kill();
            h.WaitForExit();
        }
        foreach (var (plumbing, n) in _made) await plumbing.TearDownAsync(n, default);
    }

    private System.Diagnostics.Process Holder()
    {
        var p = System.Diagnostics.Process.Start(new ProcessStartInfo("/usr/bin/unshare", ["--net", "/bin/sleep", "60"]))!;
        _holders.Add(p);
        // unshare has entered its namespace once its net namespace differs from ours
        Assert.True(SpinWait.SpinUntil(() =>
        {
            try { return File.ReadAllText($"/proc/{p.Id}/comm").Trim() == "sleep"; }
            catch (IOException) { return false; }
        }, 5000));
        return p;
    }

    [GatedTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_holders_network_is_the_same_made_over_netlink_or_by_ip(bool netlink)
    {
        var plumbing = new IpPlumbing(netlink: netlink);
        var n = TestNet.Net(_prefix, _block, "h", netlink ? 1 : 2);
        _made.Add((plumbing, n));
        var holder = Holder();
        await plumbing.SetUpAsync(n, default, holder.Id);
        Assert.True(plumbing.Exists(n));
        var len = n.Subnet.PrefixLength;

        // inside: eth0 with the address, up; lo up; the default route through the gateway; no IPv6 on eth0
        var addrs = await TestNet.Sh($"ip -n {n.Netns} -o -4 addr show");
        Assert.Contains($"eth0    inet {n.Address}/{len} brd {n.Subnet.Broadcast} scope global eth0", addrs);
        Assert.Contains("lo    inet 127.0.0.1/8 scope host lo", addrs);
        Assert.DoesNotContain("inet6", await TestNet.Sh($"ip -n {n.Netns} -o -6 addr show dev eth0"));
        var links = await TestNet.Sh($"ip -n {n.Netns} -o link show");
        Assert.Matches($@"eth0@if[0-9]+: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {n.Mtu} ", links);
        Assert.Matches("lo: <LOOPBACK,UP,LOWER_UP>", links);
        Assert.Equal(2, links.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // nothing else in it
        var routes = await TestNet.Sh($"ip -n {n.Netns} route show");
        Assert.Contains($"default via {n.Gateway} dev eth0", routes);
        Assert.Contains($"{n.Subnet.Network}/{len} dev eth0 proto kernel scope link src {n.Address}", routes);
        Assert.Equal("1", (await TestNet.Sh($"nsenter --net={n.NetnsPath} cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6")).Trim());
        Assert.Equal("1", (await TestNet.Sh($"nsenter --net={n.NetnsPath} cat /proc/sys/net/ipv6/conf/default/disable_ipv6")).Trim());

        // the host's end: the gateway, up, no IPv6 address ever (addrgenmode none), IPv6 off, strict rp_filter, route_localnet
        var host = await TestNet.Sh($"ip -o -4 addr show dev {n.HostVeth}");
        Assert.Contains($"inet {n.Gateway}/{len} brd {n.Subnet.Broadcast} scope global {n.HostVeth}", host);
        Assert.Contains("addrgenmode none", await TestNet.Sh($"ip -d link show dev {n.HostVeth}"));
        Assert.Matches($"<BROADCAST,MULTICAST,UP,LOWER_UP> mtu {n.Mtu} ", await TestNet.Sh($"ip -o link show dev {n.HostVeth}"));
        Assert.DoesNotContain("inet6", await TestNet.Sh($"ip -o -6 addr show dev {n.HostVeth}"));
        foreach (var (sysctl, value) in new[] { ("ipv6/conf/{0}/disable_ipv6", "1"), ("ipv4/conf/{0}/rp_filter", "1"), ("ipv4/conf/{0}/route_localnet", "1") })
            Assert.Equal(value, File.ReadAllText(Path.Combine("/proc/sys/net", string.Format(sysctl, n.HostVeth))).Trim());

        // a second set-up over it (a crashed create's leftovers) starts afresh
        await plumbing.SetUpAsync(n, default, holder.Id);
        Assert.Contains($"eth0    inet {n.Address}/{len}", await TestNet.Sh($"ip -n {n.Netns} -o -4 addr show"));

        // torn down once the namespace's last user is gone: its name at once, the links with the namespace
        holder.Kill();
        holder.WaitForExit();
        await plumbing.TearDownAsync(n, default);
        Assert.False(File.Exists(n.NetnsPath));
        Assert.True(SpinWait.SpinUntil(() => !Directory.Exists(Path.Combine("/sys/class/net", n.HostVeth)), 5000));
        Assert.False(plumbing.Exists(n));
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), l => l.Contains(n.NetnsPath));
        await plumbing.TearDownAsync(n, default); // idempotent
    }

    [GatedTheory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_holder_that_is_gone_is_an_error_naming_its_namespace_and_leaves_no_name(bool netlink)
    {
        var plumbing = new IpPlumbing(netlink: netlink);
        var n = TestNet.Net(_prefix, _block, "g", netlink ? 3 : 4);
        _made.Add((plumbing, n));
        var holder = Holder();
        var pid = holder.Id;
        holder.Kill();
        holder.WaitForExit();
        var e = await Assert.ThrowsAnyAsync<Exception>(() => plumbing.SetUpAsync(n, default, pid));
        Assert.Contains($"/proc/{pid}/ns/net", e.Message);
        Assert.False(File.Exists(n.NetnsPath));
        Assert.False(Directory.Exists(Path.Combine("/sys/class/net", n.HostVeth)));
    }
}
