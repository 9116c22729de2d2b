using System.Collections.Immutable;
using Garden.Actors.Host;
using Garden.Linux.Network;
using Garden.Protocol.Journal;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The host's decisions (admission, NetIn ports, release) and its List read model, without an ActorSystem: plain
/// functions of the state, the request, the settings and a fake host.</summary>
public sealed class HostStateTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("hoststate");
    private readonly FakeHostResources _host = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private GardenSettings Settings(string extra = "") => GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
        $$"""
        garden {
          state-dir = "{{_dir}}/state", default-rootfs = "/base", max-containers = 3
          network { pool = "10.9.0.0/28", port-pool { start = 40000, size = 2 } }
          {{extra}}
        }
        """));

    private static ContainerSpec Spec(string handle = "", string network = "", ImmutableArray<PortMapping> netIn = default) =>
        new(handle, "", [], ImmutableDictionary<string, string>.Empty, false, NetworkRequest: network, NetIn: netIn);

    private static GardenException Refused(Action decide) => Assert.Throws<GardenException>(decide);

    /// <summary>The state after journaling what Admit returned.</summary>
    private HostState Admitted(HostState state, ContainerSpec spec, GardenSettings? settings = null) =>
        state.Apply(state.Admit(spec, settings ?? Settings(), _host).Registered);

    [Fact]
    public void Admit_fills_in_the_defaults_and_takes_from_every_pool()
    {
        var a = HostState.Empty.Admit(Spec(netIn: [new PortMapping(0, 8080)]), Settings("default-grace-time = 5m"), _host);
        Assert.Equal(11, a.Spec.Handle.Length);
        Assert.Equal("/base", a.Spec.Rootfs);
        Assert.Equal(1024UL, a.Spec.LimitsOrNone.Pids); // garden.default-limits
        Assert.Equal(TimeSpan.FromMinutes(5), a.Spec.GraceTime);
        Assert.Equal("10.9.0.2 in 10.9.0.0/30", a.Spec.Network!.ToString());
        Assert.Equal([new PortMapping(40000, 8080)], a.Spec.NetInOrEmpty.ToArray());
        Assert.NotNull(a.Spec.UserNamespace);
        Assert.Equal(a.Spec.Handle, a.Registered.Handle);
        Assert.Equal(1, a.Registered.Incarnation);
        Assert.Equal("10.9.0.2", a.Registered.Network.Address);
        Assert.Equal([40000u], a.Registered.Ports.ToArray());
    }

    [Fact]
    public void Admit_never_hands_out_a_handle_a_subnet_or_a_port_twice()
    {
        var state = Admitted(HostState.Empty, Spec("a", netIn: [new PortMapping(0, 80)]));
        Assert.Equal(ErrorKind.AlreadyExists, Refused(() => state.Admit(Spec("a"), Settings(), _host)).Kind);
        var b = state.Admit(Spec("b", netIn: [new PortMapping(0, 80)]), Settings(), _host);
        Assert.Equal("10.9.0.6 in 10.9.0.4/30", b.Spec.Network!.ToString());
        Assert.Equal([new PortMapping(40001, 80)], b.Spec.NetInOrEmpty.ToArray());
        Assert.Equal(2, b.Registered.Incarnation);
        var taken = Refused(() => state.Admit(Spec("c", netIn: [new PortMapping(40000, 80)]), Settings(), _host));
        Assert.Equal("host port 40000 is already mapped to container a", taken.Message);
    }

    [Fact]
    public void Admit_refuses_past_the_maximum_and_says_which_limit_was_reached()
    {
        var state = HostState.Empty;
        foreach (var h in new[] { "a", "b", "c" }) state = Admitted(state, Spec(h));
        var e = Refused(() => state.Admit(Spec("d"), Settings(), _host));
        Assert.Equal(ErrorKind.ResourceExhausted, e.Kind);
        Assert.Contains("garden.max-containers", e.Message);
        Assert.Equal(3, HostState.MaxContainers(Settings()));
        Assert.Equal(4, HostState.MaxContainers(Settings("max-containers = 100"))); // the /28 holds four /30s
    }

    [Theory]
    [InlineData("bad handle", "handle:")]
    [InlineData("-x", "handle:")]
    public void Admit_refuses_a_bad_handle_before_anything_else(string handle, string field)
    {
        var e = Refused(() => HostState.Empty.Admit(Spec(handle), Settings(), _host));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith(field, e.Message);
    }

    [Fact]
    public void Admit_checks_every_field_naming_it()
    {
        GardenException Bad(ContainerSpec s, GardenSettings? settings = null) => Refused(() => HostState.Empty.Admit(s, settings ?? Settings(), _host));
        Assert.StartsWith("env:", Bad(Spec("x") with { Env = ["NOEQUALS"] }).Message);
        Assert.StartsWith("memory:", Bad(Spec("x") with { Limits = new Limits(MemoryBytes: 1) }).Message);
        Assert.StartsWith("grace time:", Bad(Spec("x") with { GraceTime = TimeSpan.FromDays(30) }).Message);
        Assert.StartsWith("bind mount 1 src:", Bad(Spec("x") with { BindMounts = [new BindMount("relative", "/mnt", true)] }).Message);
        Assert.StartsWith("container port:", Bad(Spec("x", netIn: [new PortMapping(0, 0)])).Message);
        Assert.StartsWith("host port:", Bad(Spec("x", netIn: [new PortMapping(70000, 80)])).Message);
        Assert.StartsWith("network:", Bad(Spec("x", "10.20.0.1/24")).Message); // the gateway
        Assert.StartsWith("net-out ports:", Bad(Spec("x") with
        {
            NetOut = [new NetOutRule(NetProtocol.Icmp, [], [new PortRange(80, 80)])],
        }).Message);
        Assert.StartsWith("network:", Bad(Spec("x", "10.20.0.8"), Settings("network.enabled = off")).Message);
    }

    [Fact]
    public void Admit_resolves_bind_mount_sources_and_refuses_the_daemons_own_paths()
    {
        var real = Directory.CreateDirectory(Path.Combine(_dir, "data")).FullName;
        var link = Path.Combine(_dir, "link");
        File.CreateSymbolicLink(link, real);
        var a = HostState.Empty.Admit(Spec("x") with { BindMounts = [new BindMount(link, "/mnt", true)] }, Settings(), _host);
        Assert.Equal(real, a.Spec.BindMountsOrEmpty.Single().Source);

        Directory.CreateDirectory(Path.Combine(_dir, "state", "depot"));
        var e = Refused(() => HostState.Empty.Admit(Spec("y") with { BindMounts = [new BindMount(Path.Combine(_dir, "state", "depot"), "/mnt", true)] },
            Settings(), _host));
        Assert.Contains("only gardend may use", e.Message);
    }

    [Fact]
    public void Admit_refuses_a_rootfs_that_is_holds_or_lies_inside_the_daemons_own_paths()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "state", "depot"));
        var link = Path.Combine(_dir, "innocent");
        File.CreateSymbolicLink(link, Path.Combine(_dir, "state"));
        foreach (var rootfs in new[] { "/", _dir, Path.Combine(_dir, "state"), Path.Combine(_dir, "state", "depot"), link })
        {
            var e = Refused(() => HostState.Empty.Admit(Spec("r") with { Rootfs = rootfs }, Settings(), _host));
            Assert.StartsWith("rootfs:", e.Message);
            Assert.Contains("only gardend may use", e.Message);
        }
        var own = Directory.CreateDirectory(Path.Combine(_dir, "rootfs")).FullName;
        Assert.Equal(own, HostState.Empty.Admit(Spec("ok") with { Rootfs = own }, Settings(), _host).Spec.Rootfs);
        // one that does not exist is the rootfs step's to refuse (naming it), as before
        Assert.Equal("/no/such/rootfs", HostState.Empty.Admit(Spec("gone") with { Rootfs = "/no/such/rootfs" }, Settings(), _host).Spec.Rootfs);
    }

    [Fact]
    public void A_NetIn_reserves_a_free_port_and_a_refused_one_gives_it_back()
    {
        var state = Admitted(HostState.Empty, Spec("a"));
        var network = Settings().Network;
        var r = state.ReserveNetIn("a", 0, 80, network, _host);
        Assert.Equal(new PortMapping(40000, 80), r.Mapping);
        state = state.Apply(r.Reserved);
        Assert.Equal([40000], state.PortsOf("a").ToArray());

        _host.BusyPorts.Add(40001);
        Assert.Equal(ErrorKind.ResourceExhausted, Refused(() => state.ReserveNetIn("a", 0, 81, network, _host)).Kind);
        Assert.Contains("in use on the host", Refused(() => state.ReserveNetIn("a", 40001, 81, network, _host)).Message);
        Assert.Equal(ErrorKind.NotFound, Refused(() => state.ReserveNetIn("nope", 0, 81, network, _host)).Kind);

        var returned = state.ReturnPort("a", 40000);
        Assert.NotNull(returned);
        state = state.Apply(returned);
        Assert.Empty(state.PortsOf("a"));
        Assert.Null(state.ReturnPort("a", 40000)); // nothing to give back twice
    }

    [Fact]
    public void The_decisions_read_only_the_facts_they_are_given()
    {
        // Paths and ports that exist nowhere: the decision takes the facts' word for them, it asks no host.
        var settings = Settings();
        var facts = HostFacts.None with
        {
            Paths = ImmutableDictionary<string, string?>.Empty
                .AddRange(settings.HostOnlyPaths.Select(p => KeyValuePair.Create(p, (string?)p)))
                .Add("/no/such/link", "/no/such/target")
                .Add(settings.DefaultRootfs, "/no/such/rootfs"),
            Ports = ImmutableDictionary<int, bool>.Empty.Add(40000, true).Add(40001, false),
        };
        var a = HostState.Empty.Admit(Spec("x", netIn: [new PortMapping(0, 80)]) with { BindMounts = [new BindMount("/no/such/link", "/mnt", true)] },
            settings, facts);
        Assert.Equal("/no/such/target", a.Spec.BindMountsOrEmpty.Single().Source);
        Assert.Equal([new PortMapping(40001, 80)], a.Spec.NetInOrEmpty.ToArray());
        var state = HostState.Empty.Apply(a.Registered);
        Assert.Contains("in use on the host", Refused(() => state.ReserveNetIn("x", 40000, 81, settings.Network, facts)).Message);
        // A fact the gathering did not collect is a bug, not a guess.
        Assert.Throws<InvalidOperationException>(() => state.ReserveNetIn("x", 40002, 81, settings.Network, HostFacts.None));
    }

    [Fact]
    public void The_facts_for_a_create_ask_the_host_about_its_own_paths_and_ports_and_only_as_far_into_the_pool_as_needed()
    {
        var asked = new List<int>();
        var host = new CountingHost(_host, asked);
        _host.BusyPorts.Add(40000);
        var settings = Settings("network.port-pool.size = 100");
        var facts = HostFacts.ForCreate(HostState.Empty, Spec("x", netIn: [new PortMapping(0, 80), new PortMapping(40003, 81)]), settings, host);
        Assert.Equal([40003, 40000, 40001], asked); // the named port, then the pool up to its first free port
        Assert.True(facts.TcpPortInUse(40000));
        Assert.False(facts.TcpPortInUse(40001));
        // no bind mounts: only the rootfs and the daemon's own paths, to check the one is not among the others
        Assert.Equal(settings.HostOnlyPaths.Append(settings.DefaultRootfs).Order(), facts.Paths.Keys.Order());
        Assert.Empty(HostFacts.ForCreate(HostState.Empty, Spec("y", netIn: [new PortMapping(0, 80)]), Settings("network.enabled = off"), host).Ports);
    }

    private sealed class CountingHost(FakeHostResources inner, List<int> asked) : Garden.Linux.Host.IHostResources
    {
        public ulong MemoryBytes() => inner.MemoryBytes();
        public ulong DiskBytes(string path) => inner.DiskBytes(path);
        public bool TcpPortInUse(int port) { asked.Add(port); return inner.TcpPortInUse(port); }
        public string? ResolvePath(string path) => inner.ResolvePath(path);
    }

    [Fact]
    public void A_NetIn_of_a_container_without_a_network_is_FailedPrecondition()
    {
        var settings = Settings("network.enabled = off");
        var state = Admitted(HostState.Empty, Spec("a"), settings);
        Assert.Equal(ErrorKind.FailedPrecondition, Refused(() => state.ReserveNetIn("a", 0, 80, settings.Network, _host)).Kind);
    }

    [Fact]
    public void A_snapshot_keeps_the_pending_releases_and_what_they_hold()
    {
        var state = Admitted(HostState.Empty, Spec("a", netIn: [new PortMapping(0, 80)]));
        state = state.Apply(state.Release("a")!);
        var back = HostState.Empty.Apply(state.ToSnapshot());
        Assert.Equal(state.Releasing, back.Releasing);
        Assert.Equal(state.Networks["a"], back.Networks["a"]);
        Assert.Equal(state.PortsOf("a"), back.PortsOf("a"));
    }

    [Fact]
    public void Release_frees_the_handle_and_everything_it_held()
    {
        var state = Admitted(HostState.Empty, Spec("a", netIn: [new PortMapping(0, 80)]));
        Assert.Null(state.Release("nope"));
        state = state.Apply(state.Release("a")!);
        Assert.Empty(state.Containers);
        // its release is pending: what it held stays taken, and its handle cannot be made again until it ended
        Assert.Equal(1, state.Releasing["a"]);
        Assert.Equal("10.9.0.2 in 10.9.0.0/30", state.Networks["a"].ToString());
        Assert.NotEmpty(state.PortsOf("a"));
        Assert.Equal(ErrorKind.Unavailable, Refused(() => state.Admit(Spec("a"), Settings(), _host)).Kind);
        Assert.Equal("10.9.0.6 in 10.9.0.4/30", state.Admit(Spec("b"), Settings(), _host).Spec.Network!.ToString());
        Assert.Null(state.ReleaseDone("b"));
        state = state.Apply(state.ReleaseDone("a")!);
        Assert.Empty(state.Releasing);
        Assert.Empty(state.Networks);
        Assert.Empty(state.PortsOf("a"));
        var again = state.Admit(Spec("a", netIn: [new PortMapping(0, 80)]), Settings(), _host);
        Assert.Equal("10.9.0.2 in 10.9.0.0/30", again.Spec.Network!.ToString());
        Assert.Equal(2, again.Registered.Incarnation); // a new journal: never the released one's
    }

    [Fact]
    public void The_directory_lists_what_containers_told_it_filtered_by_every_property()
    {
        static ImmutableDictionary<string, string> P(params (string, string)[] p) => p.ToImmutableDictionary(x => x.Item1, x => x.Item2);
        var d = ContainerDirectory.Empty
            .With(new HostProtocol.ContainerChanged("x", ContainerLifecycle.Active, P(("env", "prod"), ("team", "a"))))
            .With(new HostProtocol.ContainerChanged("y", ContainerLifecycle.Stopped, P(("env", "prod"))))
            .With(new HostProtocol.ContainerChanged("z", ContainerLifecycle.Broken, P()))
            .With(new HostProtocol.ContainerChanged("new", ContainerLifecycle.Creating, P(("env", "prod"))))
            .With(new HostProtocol.ContainerChanged("old", ContainerLifecycle.Destroying, P(("env", "prod"))));
        Assert.Equal(["x", "y", "z"], d.List(P()).ToArray());
        Assert.Equal(["x", "y"], d.List(P(("env", "prod"))).ToArray());
        Assert.Equal(["x"], d.List(P(("env", "prod"), ("team", "a"))).ToArray());
        d = d.With(new HostProtocol.ContainerChanged("y", ContainerLifecycle.Stopped, P(("env", "dev")))).Without("x");
        Assert.Empty(d.List(P(("env", "prod"))));
    }
}

/// <summary>The actor's order in one call: gather the facts from the (fake) host, then decide from them.</summary>
internal static class GatherThenDecide
{
    public static Admission Admit(this HostState state, ContainerSpec spec, GardenSettings settings, FakeHostResources host) =>
        state.Admit(spec, settings, HostFacts.ForCreate(state, spec, settings, host));

    public static NetInReservation ReserveNetIn(this HostState state, string handle, int hostPort, int containerPort,
        NetworkSettings network, FakeHostResources host) =>
        state.ReserveNetIn(handle, hostPort, containerPort, network, HostFacts.ForNetIn(state, hostPort, network, host));
}
