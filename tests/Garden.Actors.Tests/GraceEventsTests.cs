using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using static Garden.Actors.Host.HostProtocol;
using Garden.Actors.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Bind mounts (validated before anything is made, journaled in the spec), grace time (the container's own
/// timer, paused while a client is attached, journaled, fresh after a restart), and the events published on the EventStream.</summary>
public sealed class GraceEventsTests : TestKit
{
    private readonly CallLog _log = new();
    private readonly FakeOciRuntime _runtime;
    private readonly FakeAgent _agent;
    private readonly string _stateDir = TestPaths.NewTempDir("grace");
    private readonly string _data = TestPaths.NewTempDir("grace-data"); // not under the state dir: no bind mount may reach that
    private readonly ContainerEffects _effects;
    private IActorRef _host;

    public GraceEventsTests() : base(Garden.Protocol.Journal.ProtocolConfig.Default().WithFallback(
        "akka.persistence.snapshot-store.plugin = \"akka.persistence.snapshot-store.inmem\""))
    {
        _runtime = new FakeOciRuntime(_log);
        _agent = new FakeAgent(_log);
        _effects = new ContainerEffects(_runtime, new FakeRootfs(_log), new FakeCgroups(_log, _runtime), _agent, new FakeDiskQuota(_log),
            new FakeOomNotifier(), new FakeNetwork(_log), new FakeFirewall(_log), new FakeUserNamespaces(_log));
        Directory.CreateDirectory(Path.Combine(_stateDir, "base"));
        _host = StartHost();
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Directory.Delete(_stateDir, recursive: true);
        Directory.Delete(_data, recursive: true);
    }

    private IActorRef StartHost(string extra = "") => Sys.ActorOf(HostActor.Props(GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
        $"garden {{ state-dir = \"{_stateDir}\", default-rootfs = \"{_stateDir}/base\", stop-grace = 1s, destroy-grace = 1s, {extra} }}")),
        _effects, new FakeHostResources()), "host");

    private void Restart(string extra = "")
    {
        Watch(_host);
        Sys.Stop(_host);
        ExpectTerminated(_host);
        _host = StartHost(extra);
        AwaitAssert(() => Ask<Pong>(Ping.Instance), TimeSpan.FromSeconds(5));
    }

    private T Ask<T>(object msg) => _host.Ask<T>(msg, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();

    private GardenException Error(object msg) => Assert.IsType<GardenException>(
        Assert.ThrowsAny<Exception>(() => _host.Ask<object>(msg, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult()));

    private static CreateContainer Create(string handle, TimeSpan? grace = null, params BindMount[] mounts) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false, BindMounts: [.. mounts], GraceTime: grace));

    private bool Exists(string handle)
    {
        try
        {
            Ask<ContainerInfo>(new GetInfo(handle));
            return true;
        }
        catch (GardenException e) when (e.Kind == ErrorKind.NotFound)
        {
            return false;
        }
    }

    // ---- bind mounts ----

    [Fact]
    public void Bind_mounts_go_into_the_bundle_after_the_containers_own_and_survive_a_restart()
    {
        var data = _data;
        Ask<ContainerCreated>(Create("bm", null, new BindMount(data, "/mnt/data/../ro", true), new BindMount(data, "/mnt/rw", false)));
        var mounts = _runtime.Bundles["bm"].BindMounts!;
        Assert.Equal([new(data, "/mnt/ro", true), new(data, "/mnt/rw", false)], mounts.TakeLast(2));
        Restart();
        var info = Ask<ContainerInfo>(new GetInfo("bm"));
        Assert.Equal([new BindMount(data, "/mnt/data/../ro", true), new BindMount(data, "/mnt/rw", false)], info.BindMounts.ToArray());
    }

    [Theory]
    [InlineData("relative/src", "/mnt", "bind mount 1 src", "not an absolute path", "relative/src")]
    [InlineData("/nonexistent-garden-test-src", "/mnt", "bind mount 1 src", "does not exist", "/nonexistent-garden-test-src")]
    [InlineData("DATA", "mnt", "bind mount 1 dst", "not an absolute path", "mnt")]
    [InlineData("DATA", "/", "bind mount 1 dst", "root", "/")]
    [InlineData("DATA", "/mnt/../", "bind mount 1 dst", "root", "/mnt/../")]
    [InlineData("DATA", "/proc/sys", "bind mount 1 dst", "inside /proc", "/proc/sys")]
    [InlineData("DATA", "/sys", "bind mount 1 dst", "inside /sys", "/sys")]
    [InlineData("DATA", "/dev/shm", "bind mount 1 dst", "inside /dev", "/dev/shm")]
    [InlineData("DATA", "/.garden/agent", "bind mount 1 dst", "inside /.garden", "/.garden/agent")]
    public void A_bad_bind_mount_is_refused_naming_the_field_and_value_before_anything_is_made(string src, string dst, string field, string why,
        string shown)
    {
        src = src.Replace("DATA", _data);
        var e = Error(Create("bad", null, new BindMount(src, dst, true)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith(field, e.Message);
        Assert.Contains(why, e.Message);
        Assert.Contains($"\"{shown}\"", e.Message);
        Assert.Empty(_log.All);
        Assert.False(Exists("bad"));
    }

    [Theory]
    [InlineData("STATE", "is STATE,")]
    [InlineData("STATE/depot", "is inside STATE,")]
    [InlineData("STATE/sockets/../depot/x/..", "is inside STATE,")]
    [InlineData("DATA/link-to-state", "(that is STATE) is STATE,")]
    [InlineData("DATA/link-to-state/journal.db", "is inside STATE,")]
    [InlineData("SOCKET", "is SOCKET,")]
    public void A_bind_mount_of_the_state_dir_or_the_api_socket_is_refused_however_it_is_spelled(string src, string why)
    {
        var socket = Path.Combine(_data, "api.sock");
        File.WriteAllText(socket, "");
        Directory.CreateDirectory(Path.Combine(_stateDir, "depot", "x"));
        Directory.CreateDirectory(Path.Combine(_stateDir, "sockets"));
        File.WriteAllText(Path.Combine(_stateDir, "journal.db"), "");
        if (!File.Exists(Path.Combine(_data, "link-to-state"))) File.CreateSymbolicLink(Path.Combine(_data, "link-to-state"), _stateDir);
        Restart($"gateway.socket = \"{socket}\"");
        string Fill(string t) => t.Replace("STATE", _stateDir).Replace("DATA", _data).Replace("SOCKET", socket);
        var e = Error(Create("bad", null, new BindMount(Fill(src), "/mnt", true)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith("bind mount 1 src", e.Message);
        Assert.Contains(Fill(why), e.Message);
        Assert.Contains("only gardend may use", e.Message);
        Assert.DoesNotContain(_log.All, c => c.Contains("bad"));
        Assert.False(Exists("bad"));
        // the probe sees a mount that is allowed: a sibling of the state dir is fine
        Ask<ContainerCreated>(Create("fine", null, new BindMount(_data, "/mnt", true)));
        Assert.Equal(_data, _runtime.Bundles["fine"].BindMounts!.Last().Source);
    }

    [Fact]
    public void A_bind_mount_source_is_mounted_as_the_path_that_was_checked()
    {
        var link = Path.Combine(_data, "link");
        var target = Directory.CreateDirectory(Path.Combine(_data, "target")).FullName;
        File.CreateSymbolicLink(link, target);
        Ask<ContainerCreated>(Create("resolved", null, new BindMount(link, "/mnt", true)));
        Assert.Equal(target, _runtime.Bundles["resolved"].BindMounts!.Last().Source);
    }

    // ---- grace time ----

    [Fact]
    public void An_idle_container_is_reaped_after_its_grace_time_and_the_reason_is_published()
    {
        var events = CreateTestProbe();
        Sys.EventStream.Subscribe(events, typeof(ContainerEvent));
        Ask<ContainerCreated>(Create("idle", TimeSpan.FromMilliseconds(300)));
        events.ExpectMsg<ContainerEvent>(e => e.Kind == ContainerEvent.Created && e.Handle == "idle");
        Assert.Equal(TimeSpan.FromMilliseconds(300), Ask<ContainerInfo>(new GetInfo("idle")).GraceTime);
        events.ExpectMsg<ContainerEvent>(e => e.Kind == ContainerEvent.Reaped && e.Handle == "idle", TimeSpan.FromSeconds(5));
        events.ExpectMsg<ContainerEvent>(e => e.Kind == ContainerEvent.Destroyed && e.Handle == "idle", TimeSpan.FromSeconds(5));
        AwaitAssert(() => Assert.False(Exists("idle")), TimeSpan.FromSeconds(5));
        Assert.Contains("delete idle", _log.All);
    }

    [Fact]
    public void Requests_restart_the_timer()
    {
        Ask<ContainerCreated>(Create("busy", TimeSpan.FromMilliseconds(600)));
        for (var i = 0; i < 8; i++)
        {
            Thread.Sleep(200);
            Ask<PropertiesResult>(new GetProperties("busy")); // 1.6 s of requests, never 600 ms apart
        }
        Assert.True(Exists("busy"));
        // A List is answered by the host from its directory, asking no container: polling it keeps none alive.
        AwaitAssert(() => Assert.DoesNotContain("busy", Ask<ContainerList>(new ListContainers(ImmutableDictionary<string, string>.Empty)).Handles),
            TimeSpan.FromSeconds(5));
        Assert.DoesNotContain("busy", _runtime.Containers);
        AwaitAssert(() => Assert.False(Exists("busy")), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_container_with_an_attached_client_is_not_reaped_until_the_client_goes()
    {
        _agent.Behaviour = _ => ("hello", 0);
        Ask<ContainerCreated>(Create("held", TimeSpan.FromMilliseconds(300)));
        var started = await _host.Ask<ProcessStarted>(new RunProcess("held", new ProcessSpec("p", "/bin/x", [], [], "", "", [], null), false),
            TimeSpan.FromSeconds(5));
        Assert.NotNull(started.Stream);
        await Task.Delay(1200); // four grace times, with a client attached and no request
        Assert.Contains("held", _runtime.Containers);
        await started.Stream!.DisposeAsync(); // the client goes: the timer starts again
        AwaitAssert(() => Assert.DoesNotContain("held", _runtime.Containers), TimeSpan.FromSeconds(5));
        AwaitAssert(() => Assert.False(Exists("held")), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Zero_grace_time_never_reaps_and_the_daemon_default_applies_when_create_names_none()
    {
        Restart("default-grace-time = 400ms");
        Ask<ContainerCreated>(Create("forever", TimeSpan.Zero));
        Ask<ContainerCreated>(Create("default"));
        Assert.Equal(TimeSpan.FromMilliseconds(400), Ask<ContainerInfo>(new GetInfo("default")).GraceTime);
        AwaitAssert(() => Assert.DoesNotContain("default", _runtime.Containers), TimeSpan.FromSeconds(5));
        Assert.True(Exists("forever"));
        Assert.Equal(TimeSpan.Zero, Ask<ContainerInfo>(new GetInfo("forever")).GraceTime);
    }

    [Fact]
    public void SetGraceTime_is_journaled_and_after_a_restart_the_timer_starts_afresh()
    {
        Ask<ContainerCreated>(Create("later"));
        Ask<Done>(new SetGraceTime("later", TimeSpan.FromSeconds(30)));
        Assert.Equal(TimeSpan.FromSeconds(30), Ask<ContainerInfo>(new GetInfo("later")).GraceTime);
        Restart();
        Assert.Equal(TimeSpan.FromSeconds(30), Ask<ContainerInfo>(new GetInfo("later")).GraceTime);
        Ask<Done>(new SetGraceTime("later", TimeSpan.FromMilliseconds(300)));
        Restart(); // the recovered container counts its grace time from its recovery
        Assert.Contains("later", _runtime.Containers);
        // (polled without asking the container: every request would restart its timer)
        AwaitAssert(() => Assert.DoesNotContain("later", _runtime.Containers), TimeSpan.FromSeconds(5));
        AwaitAssert(() => Assert.False(Exists("later")), TimeSpan.FromSeconds(5));
        var e = Error(Create("bad", TimeSpan.FromDays(30)));
        Assert.StartsWith("grace time", e.Message);
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
    }

    // ---- events ----

    [Fact]
    public async Task Events_are_published_once_journaled_and_a_subscriber_sees_only_its_handle()
    {
        var mine = System.Threading.Channels.Channel.CreateUnbounded<ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, mine.Writer, "ev");
        var all = CreateTestProbe();
        Sys.EventStream.Subscribe(all, typeof(ContainerEvent));

        Ask<ContainerCreated>(Create("other"));
        Ask<ContainerCreated>(Create("ev"));
        var started = await _host.Ask<ProcessStarted>(new RunProcess("ev", new ProcessSpec("p1", "/bin/x", [], [], "", "", [], null), false),
            TimeSpan.FromSeconds(5));
        await using (var stream = started.Stream!)
            while (await stream.ReadAsync(CancellationToken.None) is { } evt && evt.KindCase != Garden.Protocol.Agent.AgentEvent.KindOneofCase.Exited) { }
        Ask<Done>(new StopContainer("ev", Kill: true));
        Ask<ContainerDestroyed>(new DestroyContainer("ev"));

        var seen = new List<ContainerEvent>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        while (seen.Count < 4) seen.Add(await mine.Reader.ReadAsync(cts.Token));
        // the process's actor and the container's publish independently: "process exited" and "stopped" may come either way
        Assert.Equal(ContainerEvent.Created, seen[0].Kind);
        Assert.Equal([ContainerEvent.ProcessExited, ContainerEvent.Stopped], seen.Skip(1).Take(2).Select(e => e.Kind).Order());
        Assert.Equal(ContainerEvent.Destroyed, seen[3].Kind);
        Assert.All(seen, e => Assert.Equal("ev", e.Handle));
        var exited = seen.Single(e => e.Kind == ContainerEvent.ProcessExited);
        Assert.Equal(("p1", (int?)0), (exited.ProcessId, exited.ExitCode));
        all.FishForMessage<ContainerEvent>(e => e.Handle == "other"); // the unfiltered subscriber saw the other one too

        Sys.Stop(subscriber);
        Restart();
        all.FishForMessage<ContainerEvent>(e => e.Kind == ContainerEvent.Reattached && e.Handle == "other", TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_detached_process_nobody_attaches_to_still_gets_its_exited_event()
    {
        var mine = System.Threading.Channels.Channel.CreateUnbounded<ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, mine.Writer, "quiet");
        _agent.Behaviour = _ => ("", 5);
        Ask<ContainerCreated>(Create("quiet"));
        await _host.Ask<ProcessStarted>(new RunProcess("quiet", new ProcessSpec("bg", "/bin/x", [], [], "", "", [], null), Detach: true),
            TimeSpan.FromSeconds(5));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        ContainerEvent e;
        do e = await mine.Reader.ReadAsync(cts.Token);
        while (e.Kind != ContainerEvent.ProcessExited);
        Assert.Equal(("bg", (int?)5), (e.ProcessId, e.ExitCode));
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task A_process_of_an_earlier_daemon_gets_its_exited_event_after_a_restart()
    {
        Ask<ContainerCreated>(Create("old"));
        await _host.Ask<ProcessStarted>(new RunProcess("old", new ProcessSpec("long", "/bin/x", [], [], "", "", [], null), Detach: true),
            TimeSpan.FromSeconds(5));
        _agent.KeepRunning("long");
        Restart();
        var mine = System.Threading.Channels.Channel.CreateUnbounded<ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, mine.Writer, "old");
        await Task.Delay(200);
        await _agent.SignalAsync("long", 9, CancellationToken.None); // it ends while nobody follows it
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        ContainerEvent e;
        do e = await mine.Reader.ReadAsync(cts.Token);
        while (e.Kind != ContainerEvent.ProcessExited);
        Assert.Equal("long", e.ProcessId);
        Sys.Stop(subscriber);
    }
}
