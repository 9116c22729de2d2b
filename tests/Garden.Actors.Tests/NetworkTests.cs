using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Linux.Network;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Pools, NetIn and NetOut at the actor level (fake plumbing and firewall; the real ones have contract tests).</summary>
// A pool of three /30s and a pool of three host ports.
public sealed class NetworkTests() : ActorTest("network", """
    network {
      pool = "10.9.0.0/28"
      port-pool { start = 40000, size = 3 }
      allow-networks = ["10.1.0.0/16"]
    }
    max-containers = 10
    """)
{
    private static HostProtocol.CreateContainer Create(string handle, string network = "", ImmutableArray<PortMapping> netIn = default) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false, NetworkRequest: network, NetIn: netIn));

    private ContainerProtocol.ContainerInfo Info(string handle) => Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(handle));

    private static NetOutRule Tcp(string to, int port) => new(NetProtocol.Tcp, [Ipv4Range.Parse(to, "t")], [new PortRange(port, port)]);

    [Fact]
    public void Each_container_gets_its_own_subnet_from_the_pool_and_capacity_is_what_the_pool_holds()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Ask<HostProtocol.ContainerCreated>(Create("b"));
        Assert.Equal("10.9.0.2 in 10.9.0.0/30", Info("a").Network!.ToString());
        Assert.Equal("10.9.0.6 in 10.9.0.4/30", Info("b").Network!.ToString());
        Assert.Equal(4UL, Ask<HostProtocol.Capacity>(HostProtocol.GetCapacity.Instance).MaxContainers); // 16 addresses / 4, below max-containers 10
        Assert.NotNull(Firewall.Of("a"));
        Assert.Contains("a", Network.Handles);
    }

    [Fact]
    public void An_exhausted_pool_is_ResourceExhausted_and_a_destroyed_container_gives_its_subnet_back()
    {
        foreach (var h in new[] { "a", "b", "c", "d" }) Ask<HostProtocol.ContainerCreated>(Create(h));
        var e = Error(Create("e"));
        Assert.Equal(ErrorKind.ResourceExhausted, e.Kind);
        Assert.Contains("pool", e.Message);
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("b"));
        AwaitAssert(() => Assert.DoesNotContain("b", Network.Handles)); // released just after the reply
        AwaitAssert(() => Assert.Null(Firewall.Of("b")));
        AwaitAssert(() => Ask<HostProtocol.ContainerCreated>(Create("e")), TimeSpan.FromSeconds(5)); // the host releases b just after the reply
        Assert.Equal("10.9.0.6 in 10.9.0.4/30", Info("e").Network!.ToString());
    }

    [Theory]
    [InlineData("10.20.0.0/24", "10.20.0.2 in 10.20.0.0/24")]
    [InlineData("10.20.0.9/24", "10.20.0.9 in 10.20.0.0/24")]
    [InlineData("10.20.0.10", "10.20.0.10 in 10.20.0.8/30")]
    public void A_create_may_ask_for_a_network_or_an_address(string request, string expected)
    {
        Ask<HostProtocol.ContainerCreated>(Create("x", request));
        Assert.Equal(expected, Info("x").Network!.ToString());
    }

    [Fact]
    public void Containers_may_share_a_subnet_they_ask_for_but_not_an_address_or_an_overlap()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a", "10.20.0.0/24"));
        Ask<HostProtocol.ContainerCreated>(Create("b", "10.20.0.0/24"));
        Assert.Equal("10.20.0.3 in 10.20.0.0/24", Info("b").Network!.ToString());
        var taken = Error(Create("c", "10.20.0.2/24"));
        Assert.Equal(ErrorKind.AlreadyExists, taken.Kind);
        Assert.Contains("10.20.0.2 is already the address of container a", taken.Message);
        var overlap = Error(Create("d", "10.20.0.0/16"));
        Assert.Contains("overlaps 10.20.0.0/24", overlap.Message);
    }

    [Theory]
    [InlineData("10.20.0", "not an IPv4 address")]
    [InlineData("10.20.0.0/33", "prefix length")]
    [InlineData("10.20.0.1/31", "no room")]
    [InlineData("10.20.0.1/24", "is the gateway")]
    [InlineData("10.20.0.255/24", "broadcast")]
    public void A_bad_network_request_is_InvalidArgument_naming_the_field(string request, string why)
    {
        var e = Error(Create("x", request));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith("network", e.Message.Replace("invalid ", ""));
        Assert.Contains(why, e.Message);
        Assert.Empty(Network.Handles);
        Ask<HostProtocol.ContainerCreated>(Create("x")); // the handle stayed free (refused before it was registered)
    }

    [Fact]
    public void NetIn_takes_host_ports_from_the_pool_refuses_taken_ones_and_shows_them_in_Info()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a", netIn: [new PortMapping(0, 8080)]));
        Assert.Equal([new PortMapping(40000, 8080)], Info("a").MappedPorts!);
        Assert.Equal(new PortMapping(40001, 22), Ask<ContainerProtocol.NetInInForce>(new ContainerProtocol.NetIn("a", 0, 22)).Mapping);
        Assert.Equal(2, Firewall.Of("a")!.NetIn.Count);

        Resources.BusyPorts.Add(40002);
        var exhausted = Error(new ContainerProtocol.NetIn("a", 0, 23));
        Assert.Equal(ErrorKind.ResourceExhausted, exhausted.Kind);
        var mapped = Error(new ContainerProtocol.NetIn("a", 40000, 9));
        Assert.Equal(ErrorKind.AlreadyExists, mapped.Kind);
        Assert.Contains("host port 40000 is already mapped to container a", mapped.Message);
        var busy = Error(new ContainerProtocol.NetIn("a", 40002, 9));
        Assert.Contains("in use on the host", busy.Message);
        Assert.Contains("container port", Error(new ContainerProtocol.NetIn("a", 0, 70000)).Message);
        Assert.Equal(2, Firewall.Of("a")!.NetIn.Count);
    }

    [Fact]
    public void A_NetIn_the_firewall_refuses_gives_its_port_back()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Firewall.FailNextApply = new FirewallException("iptables-restore refused it");
        var e = Error(new ContainerProtocol.NetIn("a", 0, 80));
        Assert.Contains("refused", e.Message);
        Assert.Empty(Info("a").MappedPorts!);
        Assert.Equal(new PortMapping(40000, 80), Ask<ContainerProtocol.NetInInForce>(new ContainerProtocol.NetIn("a", 0, 80)).Mapping);
    }

    [Fact]
    public async Task NetIns_at_once_for_one_container_each_get_their_own_port_and_their_own_answer()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        var gate = new TaskCompletionSource();
        Firewall.ApplyGate = gate.Task;
        var first = Host.Ask<ContainerProtocol.NetInInForce>(new ContainerProtocol.NetIn("a", 0, 80), TimeSpan.FromSeconds(5));
        var second = Host.Ask<ContainerProtocol.NetInInForce>(new ContainerProtocol.NetIn("a", 0, 81), TimeSpan.FromSeconds(5));
        var third = Host.Ask<object>(new ContainerProtocol.NetIn("a", 40000, 82), TimeSpan.FromSeconds(5));
        await Task.Delay(200);
        Assert.False(first.IsCompleted || second.IsCompleted || third.IsCompleted); // the container has not applied them yet
        gate.SetResult();
        Assert.Equal(new PortMapping(40000, 80), (await first).Mapping);
        Assert.Equal(new PortMapping(40001, 81), (await second).Mapping);
        var taken = Assert.IsType<GardenException>(await Assert.ThrowsAnyAsync<Exception>(() => third));
        Assert.Contains("host port 40000 is already mapped to container a", taken.Message);
        Assert.Equal([new PortMapping(40000, 80), new PortMapping(40001, 81)], Info("a").MappedPorts!);
    }

    [Fact]
    public async Task List_is_answered_from_the_host_while_a_container_is_busy()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Ask<HostProtocol.ContainerCreated>(Create("b"));
        var gate = new TaskCompletionSource();
        Firewall.ApplyGate = gate.Task;
        var change = Host.Ask<HostProtocol.Done>(new ContainerProtocol.NetOut("a", [Tcp("10.2.0.0/24", 80)]), TimeSpan.FromSeconds(5)); // "a" waits for iptables
        var list = Host.Ask<HostProtocol.ContainerList>(new HostProtocol.ListContainers(ImmutableDictionary<string, string>.Empty), TimeSpan.FromMilliseconds(500));
        Assert.Equal(["a", "b"], (await list).Handles.ToArray());
        Assert.False(change.IsCompleted);
        gate.SetResult();
        await change;
    }

    [Fact]
    public void NetOut_adds_rules_and_a_bad_rule_changes_nothing()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Ask<HostProtocol.Done>(new ContainerProtocol.NetOut("a", [Tcp("10.2.0.0/24", 80)]));
        Assert.Single(Firewall.Of("a")!.NetOut);
        var bad = new NetOutRule(NetProtocol.Icmp, [], [new PortRange(80, 80)]);
        var e = Error(new ContainerProtocol.NetOut("a", [Tcp("10.3.0.1", 443), bad]));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("ports need protocol tcp or udp", e.Message);
        Assert.Single(Firewall.Of("a")!.NetOut);
    }

    [Fact]
    public void Pools_rules_and_mappings_survive_a_restart_and_lost_rules_are_put_back()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a", netIn: [new PortMapping(0, 8080)]));
        Ask<HostProtocol.Done>(new ContainerProtocol.NetOut("a", [Tcp("10.2.0.0/24", 80)]));
        Firewall.Flush("a"); // the kernel lost them (a crash, an operator's flush)
        Restart();
        var fw = Firewall.Of("a");
        Assert.NotNull(fw);
        Assert.Single(fw.NetOut);
        Assert.Equal([new PortMapping(40000, 8080)], fw.NetIn);
        Ask<HostProtocol.ContainerCreated>(Create("b", netIn: [new PortMapping(0, 80)]));
        Assert.Equal("10.9.0.6 in 10.9.0.4/30", Info("b").Network!.ToString()); // not handed out twice
        Assert.Equal([new PortMapping(40001, 80)], Info("b").MappedPorts!);
    }

    [Fact]
    public void A_container_whose_network_vanished_while_the_daemon_was_down_is_reported_broken()
    {
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Network.Vanish("a");
        Restart();
        var info = Info("a");
        Assert.Equal(ContainerLifecycle.Broken, info.State);
        Assert.Contains(info.Events, e => e.Contains("network"));
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("a"));
    }

    [Fact]
    public void A_failed_network_setup_undoes_the_create_and_frees_the_address()
    {
        Network.FailNextSetUp = new NetworkException("ip refused it");
        var e = Error(Create("a"));
        Assert.Contains("ip refused it", e.Message);
        Assert.Empty(Network.Handles);
        Assert.Null(Firewall.Of("a"));
        AwaitAssert(() => Ask<HostProtocol.ContainerCreated>(Create("a")), TimeSpan.FromSeconds(5)); // the handle is released just after the reply
        Assert.Equal("10.9.0.2 in 10.9.0.0/30", Info("a").Network!.ToString());
    }

    [Fact]
    public void Bandwidth_is_set_at_create_changed_live_and_read_back()
    {
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(new ContainerSpec("a", "", [], ImmutableDictionary<string, string>.Empty, false,
            new Limits(BandwidthRate: 1 << 20))));
        Assert.Equal((ulong)(1 << 20), Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits("a")).Limits.BandwidthRate);
        Assert.Equal(128UL << 10, Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits("a")).Limits.BandwidthBurst);
        var changed = Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits("a", new Limits(BandwidthRate: 2 << 20, BandwidthBurst: 100_000))).Limits;
        Assert.Equal((ulong)(2 << 20), changed.BandwidthRate);
        Assert.Equal(100_000UL, changed.BandwidthBurst);
        Assert.Contains("rate", Error(new ContainerProtocol.SetLimits("a", new Limits(BandwidthRate: 10))).Message);
    }
}
