using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Garden.Actors.Container;
using Garden.Actors.Host;
using static Garden.Actors.Host.HostProtocol;
using Garden.Linux.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Recovery proven by a second incarnation of the HostActor on the same journal (the in-memory journal of
/// this ActorSystem), with the fakes standing for a kernel that kept running.</summary>
public sealed class RecoveryTests : TestKit
{
    private readonly CallLog _log = new();
    private readonly FakeOciRuntime _runtime;
    private readonly FakeRootfs _rootfs;
    private readonly FakeAgent _agent;
    private readonly string _stateDir = TestPaths.NewTempDir("recovery");
    private readonly ContainerEffects _effects;
    private IActorRef _host;

    public RecoveryTests() : base(Garden.Protocol.Journal.ProtocolConfig.Default().WithFallback(
        "akka.persistence.snapshot-store.plugin = \"akka.persistence.snapshot-store.inmem\""))
    {
        _runtime = new FakeOciRuntime(_log);
        _rootfs = new FakeRootfs(_log);
        _agent = new FakeAgent(_log);
        _effects = new ContainerEffects(_runtime, _rootfs, new FakeCgroups(_log, _runtime), _agent, new FakeDiskQuota(_log), new FakeOomNotifier(), new FakeNetwork(_log), new FakeFirewall(_log), new FakeUserNamespaces(_log));
        Directory.CreateDirectory(Path.Combine(_stateDir, "base"));
        _host = StartHost();
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Directory.Delete(_stateDir, recursive: true);
    }

    private GardenSettings Settings(bool destroyOnStart = false) => GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
        $"garden {{ state-dir = \"{_stateDir}\", default-rootfs = \"{_stateDir}/base\", stop-grace = 1s, destroy-grace = 1s, " +
        $"snapshot-every = 3, destroy-containers-on-start = {(destroyOnStart ? "on" : "off")} }}"));

    private IActorRef StartHost(bool destroyOnStart = false) =>
        Sys.ActorOf(HostActor.Props(Settings(destroyOnStart), _effects, new FakeHostResources()), "host");

    /// <summary>The daemon dies (its actors stop without any cleanup) and a new one starts on the same journal.</summary>
    private void Restart(bool destroyOnStart = false, bool waitUntilServing = true, Action? whileDown = null)
    {
        Watch(_host);
        Sys.Stop(_host);
        ExpectTerminated(_host);
        whileDown?.Invoke();
        _host = StartHost(destroyOnStart);
        if (waitUntilServing) AwaitAssert(() => Ask<Pong>(Ping.Instance), TimeSpan.FromSeconds(5));
    }

    private T Ask<T>(object msg) => _host.Ask<T>(msg, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();

    private GardenException Error(object msg) => Assert.IsType<GardenException>(
        Assert.ThrowsAny<Exception>(() => _host.Ask<object>(msg, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult()));

    private void Create(string handle, params (string, string)[] props) => Ask<ContainerCreated>(new CreateContainer(
        new ContainerSpec(handle, "", ["E=1"], props.ToImmutableDictionary(p => p.Item1, p => p.Item2), false)));

    [Fact]
    public void A_restarted_host_reattaches_with_the_same_handle_properties_and_state()
    {
        Create("keep", ("a", "1"));
        Ask<Done>(new SetProperty("keep", "b", "2"));
        Ask<Done>(new SetProperty("keep", "c", "3"));
        Ask<Done>(new RemoveProperty("keep", "a"));
        Create("halt");
        Ask<Done>(new StopContainer("halt", Kill: true));
        var before = Ask<ContainerInfo>(new GetInfo("keep"));

        Restart();

        var after = Ask<ContainerInfo>(new GetInfo("keep"));
        Assert.Equal(before.Handle, after.Handle);
        Assert.Equal(ContainerLifecycle.Active, after.State);
        Assert.Equal(before.Properties, after.Properties);
        Assert.Equal(before.Events, after.Events);
        Assert.Equal(ContainerLifecycle.Stopped, Ask<ContainerInfo>(new GetInfo("halt")).State);
        Assert.Equal(["halt", "keep"], Ask<ContainerList>(new ListContainers(ImmutableDictionary<string, string>.Empty)).Handles.ToArray());
        Assert.Contains("adopt keep", _log.All);
        Assert.Equal(2, _runtime.Containers.Count);
        Assert.Equal(1, _log.Count("run keep")); // reattached, not recreated
    }

    [Fact]
    public void A_container_whose_runc_state_vanished_is_reported_broken_and_can_be_destroyed()
    {
        Create("vanish");
        _runtime.Forget("vanish");
        Restart();
        var info = Ask<ContainerInfo>(new GetInfo("vanish"));
        Assert.Equal(ContainerLifecycle.Broken, info.State);
        Assert.Contains(info.Events, e => e.Contains("runc state vanished"));
        var run = Error(new RunProcess("vanish", new ProcessSpec("", "/bin/true", [], [], "", "", [], null), false));
        Assert.Equal(ErrorKind.FailedPrecondition, run.Kind);
        Ask<ContainerDestroyed>(new DestroyContainer("vanish"));
        Assert.Equal(0, _rootfs.MountedCount);
        AwaitAssert(() => Assert.Equal(ErrorKind.NotFound, Error(new GetInfo("vanish")).Kind));
    }

    [Fact]
    public void A_container_whose_agent_died_is_reported_broken()
    {
        Create("orphan");
        _runtime.StopInit("orphan");
        Restart();
        var info = Ask<ContainerInfo>(new GetInfo("orphan"));
        Assert.Equal(ContainerLifecycle.Broken, info.State);
        Assert.Contains(info.Events, e => e.Contains("container init gone"));
        Restart(); // broken stays broken, without a second note
        Assert.Single(Ask<ContainerInfo>(new GetInfo("orphan")).Events, e => e.Contains("container init gone"));
    }

    [Fact]
    public void A_create_interrupted_by_a_crash_is_undone_by_the_next_daemon()
    {
        var gate = new TaskCompletionSource();
        _runtime.RunGate = gate.Task;
        _host.Tell(new CreateContainer(new ContainerSpec("half", "", [], ImmutableDictionary<string, string>.Empty, false)));
        AwaitCondition(() => _log.Count("run half") == 1);
        // The daemon dies while runc is starting the container: the container comes up with nobody to record it.
        Restart(waitUntilServing: false, whileDown: () =>
        {
            _runtime.RunGate = null;
            gate.SetResult();
            AwaitCondition(() => _runtime.Containers.Contains("half"));
        });
        AwaitAssert(() => Ask<Pong>(Ping.Instance), TimeSpan.FromSeconds(5));
        AwaitAssert(() =>
        {
            Assert.Equal(ErrorKind.NotFound, Error(new GetInfo("half")).Kind);
            Assert.Equal(0, _rootfs.MountedCount);
            Assert.Empty(_runtime.Containers);
        }, TimeSpan.FromSeconds(5));
        Create("half"); // the handle is free again
    }

    [Fact]
    public void The_gateway_gets_Unavailable_until_every_container_is_reconciled()
    {
        Create("slow");
        var gate = new TaskCompletionSource();
        _agent.PingGate = gate.Task;
        Restart(waitUntilServing: false);
        var e = Error(Ping.Instance);
        Assert.Equal(ErrorKind.Unavailable, e.Kind);
        Assert.Contains("recovering", e.Message);
        Assert.Equal(ErrorKind.Unavailable, Error(new GetInfo("slow")).Kind);
        gate.SetResult();
        AwaitAssert(() => Ask<Pong>(Ping.Instance), TimeSpan.FromSeconds(5));
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerInfo>(new GetInfo("slow")).State);
    }

    [Fact]
    public void Destroy_containers_on_start_leaves_a_clean_host()
    {
        Create("x1");
        Create("x2");
        Restart(destroyOnStart: true, waitUntilServing: false);
        AwaitAssert(() => Ask<Pong>(Ping.Instance), TimeSpan.FromSeconds(5));
        Assert.Empty(Ask<ContainerList>(new ListContainers(ImmutableDictionary<string, string>.Empty)).Handles);
        Assert.Empty(_runtime.Containers);
        Assert.Equal(0, _rootfs.MountedCount);
    }

    [Fact]
    public void A_destroyed_handle_stays_gone_after_a_restart_and_can_be_reused()
    {
        Create("reuse", ("gen", "1"));
        Ask<ContainerDestroyed>(new DestroyContainer("reuse"));
        Restart();
        Assert.Equal(ErrorKind.NotFound, Error(new GetInfo("reuse")).Kind);
        Create("reuse", ("gen", "2"));
        Restart();
        Assert.Equal("2", Ask<PropertyValue>(new GetProperty("reuse", "gen")).Value);
    }
}
