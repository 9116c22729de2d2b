using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Bind mounts (validated before anything is made, journaled in the spec), grace time (the container's own
/// timer, paused while a client is attached, journaled, fresh after a restart), and the events published on the EventStream.</summary>
public sealed class GraceEventsTests() : ActorTest("grace")
{
    private readonly string _data = TestPaths.NewTempDir("grace-data"); // not under the state dir: no bind mount may reach that

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing) Directory.Delete(_data, recursive: true);
    }

    private static HostProtocol.CreateContainer Create(string handle, TimeSpan? grace = null, params BindMount[] mounts) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false, BindMounts: [.. mounts], GraceTime: grace));

    /// <summary>The container's armed grace timer (it is armed before the container answers a request).</summary>
    private VirtualScheduler.Timer GraceTimer(string handle) => ArmedTimer(handle, "GraceTimeUp");

    // ---- bind mounts ----

    [Fact]
    public void Bind_mounts_go_into_the_bundle_after_the_containers_own_and_survive_a_restart()
    {
        var data = _data;
        Ask<HostProtocol.ContainerCreated>(Create("bm", null, new BindMount(data, "/mnt/data/../ro", true), new BindMount(data, "/mnt/rw", false)));
        var mounts = Runtime.Bundles["bm"].BindMounts!;
        Assert.Equal([new(data, "/mnt/ro", true), new(data, "/mnt/rw", false)], mounts.TakeLast(2));
        Restart();
        var info = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("bm"));
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
        Assert.Empty(Calls.All);
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
        Directory.CreateDirectory(Path.Combine(StateDir, "depot", "x"));
        Directory.CreateDirectory(Path.Combine(StateDir, "sockets"));
        File.WriteAllText(Path.Combine(StateDir, "journal.db"), "");
        if (!File.Exists(Path.Combine(_data, "link-to-state"))) File.CreateSymbolicLink(Path.Combine(_data, "link-to-state"), StateDir);
        Restart($"gateway.socket = \"{socket}\"");
        string Fill(string t) => t.Replace("STATE", StateDir).Replace("DATA", _data).Replace("SOCKET", socket);
        var e = Error(Create("bad", null, new BindMount(Fill(src), "/mnt", true)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith("bind mount 1 src", e.Message);
        Assert.Contains(Fill(why), e.Message);
        Assert.Contains("only gardend may use", e.Message);
        Assert.DoesNotContain(Calls.All, c => c.Names("bad"));
        Assert.False(Exists("bad"));
        // the probe sees a mount that is allowed: a sibling of the state dir is fine
        Ask<HostProtocol.ContainerCreated>(Create("fine", null, new BindMount(_data, "/mnt", true)));
        Assert.Equal(_data, Runtime.Bundles["fine"].BindMounts!.Last().Source);
    }

    [Fact]
    public void A_bind_mount_source_is_mounted_as_the_path_that_was_checked()
    {
        var link = Path.Combine(_data, "link");
        var target = Directory.CreateDirectory(Path.Combine(_data, "target")).FullName;
        File.CreateSymbolicLink(link, target);
        Ask<HostProtocol.ContainerCreated>(Create("resolved", null, new BindMount(link, "/mnt", true)));
        Assert.Equal(target, Runtime.Bundles["resolved"].BindMounts!.Last().Source);
    }

    // ---- grace time (virtual time: the clock moves only when the test advances it) ----

    [Fact]
    public void An_idle_container_is_reaped_after_its_grace_time_and_the_reason_is_published()
    {
        var events = CreateTestProbe();
        Sys.EventStream.Subscribe(events, typeof(EventsProtocol.ContainerEvent));
        Ask<HostProtocol.ContainerCreated>(Create("idle", TimeSpan.FromMilliseconds(300)));
        events.ExpectMsg<EventsProtocol.ContainerEvent>(e => e.Kind == EventsProtocol.ContainerEvent.Created && e.Handle == "idle");
        Assert.Equal(TimeSpan.FromMilliseconds(300), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("idle")).GraceTime);
        var timer = GraceTimer("idle");
        Assert.Equal(TimeSpan.FromMilliseconds(300), timer.Delay);
        Clock.Advance(TimeSpan.FromMilliseconds(299));
        Assert.True(timer.Armed); // not a moment early
        Assert.Contains("idle", Runtime.Containers);
        Clock.Advance(TimeSpan.FromMilliseconds(1));
        events.ExpectMsg<EventsProtocol.ContainerEvent>(e => e.Kind == EventsProtocol.ContainerEvent.Reaped && e.Handle == "idle", TimeSpan.FromSeconds(5));
        events.ExpectMsg<EventsProtocol.ContainerEvent>(e => e.Kind == EventsProtocol.ContainerEvent.Destroyed && e.Handle == "idle", TimeSpan.FromSeconds(5));
        AwaitAssert(() => Assert.False(Exists("idle")), TimeSpan.FromSeconds(5));
        Assert.Contains(new Call.Deleted("idle"), Calls.All);
    }

    [Fact]
    public void Requests_restart_the_timer()
    {
        Ask<HostProtocol.ContainerCreated>(Create("busy", TimeSpan.FromMilliseconds(600)));
        for (var i = 0; i < 8; i++)
        {
            Clock.Advance(TimeSpan.FromMilliseconds(200));
            Ask<ContainerProtocol.PropertiesResult>(new ContainerProtocol.GetProperties("busy")); // 1.6 s of requests, never 600 ms apart
            Assert.Equal(Clock.Now + TimeSpan.FromMilliseconds(600), GraceTimer("busy").Due); // counted from this request
        }
        Assert.True(Exists("busy"));
        Assert.Contains("busy", Runtime.Containers);
        // A List is answered by the host from its directory, asking no container: polling it keeps none alive.
        var due = GraceTimer("busy").Due;
        Clock.Advance(TimeSpan.FromMilliseconds(300));
        Assert.Contains("busy", List());
        Assert.Equal(due, GraceTimer("busy").Due);
        Clock.Advance(TimeSpan.FromMilliseconds(300));
        AwaitAssert(() => Assert.DoesNotContain("busy", List()), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain("busy", Runtime.Containers);
        AwaitAssert(() => Assert.False(Exists("busy")), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_container_with_an_attached_client_is_not_reaped_until_the_client_goes()
    {
        Agent.Behaviour = _ => ("hello", 0);
        Ask<HostProtocol.ContainerCreated>(Create("held", TimeSpan.FromMilliseconds(300)));
        var started = await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("held", new ProcessSpec("p", "/bin/x", [], [], "", "", [], null), false));
        Assert.NotNull(started.Stream);
        // with a client attached the timer is off: four grace times pass, with no request
        AwaitAssert(() => Assert.Empty(ArmedTimers("held", "GraceTimeUp")));
        Clock.Advance(TimeSpan.FromMilliseconds(1200));
        Assert.Contains("held", Runtime.Containers);
        await started.Stream!.DisposeAsync(); // the client goes: the timer starts again
        Assert.Equal(TimeSpan.FromMilliseconds(300), GraceTimer("held").Delay);
        Clock.Advance(TimeSpan.FromMilliseconds(300));
        AwaitAssert(() => Assert.DoesNotContain("held", Runtime.Containers), TimeSpan.FromSeconds(5));
        AwaitAssert(() => Assert.False(Exists("held")), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Zero_grace_time_never_reaps_and_the_daemon_default_applies_when_create_names_none()
    {
        Restart("default-grace-time = 400ms");
        Ask<HostProtocol.ContainerCreated>(Create("forever", TimeSpan.Zero));
        Ask<HostProtocol.ContainerCreated>(Create("default"));
        Assert.Equal(TimeSpan.FromMilliseconds(400), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("default")).GraceTime);
        Assert.Equal(TimeSpan.FromMilliseconds(400), GraceTimer("default").Delay);
        Assert.Equal(TimeSpan.Zero, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("forever")).GraceTime);
        Assert.Empty(ArmedTimers("forever", "GraceTimeUp"));
        Clock.Advance(TimeSpan.FromDays(1));
        AwaitAssert(() => Assert.DoesNotContain("default", Runtime.Containers), TimeSpan.FromSeconds(5));
        Assert.True(Exists("forever"));
        Assert.Contains("forever", Runtime.Containers);
    }

    [Fact]
    public void SetGraceTime_is_journaled_and_after_a_restart_the_timer_starts_afresh()
    {
        Ask<HostProtocol.ContainerCreated>(Create("later"));
        Ask<HostProtocol.Done>(new ContainerProtocol.SetGraceTime("later", TimeSpan.FromSeconds(30)));
        Assert.Equal(TimeSpan.FromSeconds(30), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("later")).GraceTime);
        Restart();
        Assert.Equal(TimeSpan.FromSeconds(30), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("later")).GraceTime);
        Ask<HostProtocol.Done>(new ContainerProtocol.SetGraceTime("later", TimeSpan.FromMilliseconds(300)));
        Clock.Advance(TimeSpan.FromMilliseconds(250));
        Restart(); // the recovered container counts its grace time from its recovery
        Assert.Contains("later", Runtime.Containers);
        // (looked at without asking the container: every request would restart its timer)
        var timer = GraceTimer("later");
        Assert.Equal(Clock.Now + TimeSpan.FromMilliseconds(300), timer.Due);
        Clock.Advance(TimeSpan.FromMilliseconds(299));
        Assert.True(timer.Armed);
        Clock.Advance(TimeSpan.FromMilliseconds(1));
        AwaitAssert(() => Assert.DoesNotContain("later", Runtime.Containers), TimeSpan.FromSeconds(5));
        AwaitAssert(() => Assert.False(Exists("later")), TimeSpan.FromSeconds(5));
        var e = Error(Create("bad", TimeSpan.FromDays(30)));
        Assert.StartsWith("grace time", e.Message);
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
    }

    // ---- events ----

    [Fact]
    public async Task Events_are_published_once_journaled_and_a_subscriber_sees_only_its_handle()
    {
        var mine = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, mine.Writer, "ev");
        var all = CreateTestProbe();
        Sys.EventStream.Subscribe(all, typeof(EventsProtocol.ContainerEvent));

        Ask<HostProtocol.ContainerCreated>(Create("other"));
        Ask<HostProtocol.ContainerCreated>(Create("ev"));
        var started = await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("ev", new ProcessSpec("p1", "/bin/x", [], [], "", "", [], null), false));
        await using (var stream = started.Stream!)
            while (await stream.ReadAsync(CancellationToken.None) is { } evt && evt.KindCase != Garden.Protocol.Agent.AgentEvent.KindOneofCase.Exited) { }
        // The process's actor publishes its exit on its own, beside the stream the client read it from: under load it can
        // come after a Stop and Destroy sent at once, so it is waited for before them.
        var seen = new List<EventsProtocol.ContainerEvent>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        while (seen.Count < 2) seen.Add(await mine.Reader.ReadAsync(cts.Token));
        Ask<HostProtocol.Done>(new ContainerProtocol.StopContainer("ev", Kill: true));
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("ev"));
        while (seen.Count < 4) seen.Add(await mine.Reader.ReadAsync(cts.Token));
        Assert.Equal([EventsProtocol.ContainerEvent.Created, EventsProtocol.ContainerEvent.ProcessExited, EventsProtocol.ContainerEvent.Stopped,
            EventsProtocol.ContainerEvent.Destroyed], seen.Select(e => e.Kind));
        Assert.All(seen, e => Assert.Equal("ev", e.Handle));
        var exited = seen.Single(e => e.Kind == EventsProtocol.ContainerEvent.ProcessExited);
        Assert.Equal(("p1", (int?)0), (exited.ProcessId, exited.ExitCode));
        all.FishForMessage<EventsProtocol.ContainerEvent>(e => e.Handle == "other"); // the unfiltered subscriber saw the other one too

        Sys.Stop(subscriber);
        Restart();
        all.FishForMessage<EventsProtocol.ContainerEvent>(e => e.Kind == EventsProtocol.ContainerEvent.Reattached && e.Handle == "other", TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_detached_process_nobody_attaches_to_still_gets_its_exited_event()
    {
        var mine = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, mine.Writer, "quiet");
        Agent.Behaviour = _ => ("", 5);
        Ask<HostProtocol.ContainerCreated>(Create("quiet"));
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("quiet", new ProcessSpec("bg", "/bin/x", [], [], "", "", [], null), Detach: true));
        // the exit watch looks the process up in the agent once a second
        Assert.Equal(TimeSpan.FromSeconds(1), ArmedTimer("quiet", "ExitWatchTick").Interval);
        Clock.Advance(TimeSpan.FromSeconds(1));
        var e = await NextExit(mine);
        Assert.Equal(("bg", (int?)5), (e.ProcessId, e.ExitCode));
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task A_process_of_an_earlier_daemon_gets_its_exited_event_after_a_restart()
    {
        Ask<HostProtocol.ContainerCreated>(Create("old"));
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("old", new ProcessSpec("long", "/bin/x", [], [], "", "", [], null), Detach: true));
        Agent.KeepRunning("long");
        Restart();
        var mine = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, mine.Writer, "old");
        // the new incarnation found the process running in the agent and watches it
        ArmedTimer("old", "ExitWatchTick");
        await Agent.SignalAsync("long", 9, CancellationToken.None); // it ends while nobody follows it
        Clock.Advance(TimeSpan.FromSeconds(1));
        var e = await NextExit(mine);
        Assert.Equal("long", e.ProcessId);
        Sys.Stop(subscriber);
    }

    private static async Task<EventsProtocol.ContainerEvent> NextExit(System.Threading.Channels.Channel<EventsProtocol.ContainerEvent> events)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        EventsProtocol.ContainerEvent e;
        do e = await events.Reader.ReadAsync(cts.Token);
        while (e.Kind != EventsProtocol.ContainerEvent.ProcessExited);
        return e;
    }
}
