using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using static Garden.Actors.Host.HostProtocol;
using Garden.Actors.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Bounded growth on the daemon's side: a ProcessActor goes once its process is done, a later attach goes through
/// the agent (without a second "process exited" event), and the exit watcher has one List out at a time.</summary>
public sealed class ProcessLifetimeTests : TestKit
{
    private readonly CallLog _log = new();
    private readonly FakeAgent _agent;
    private readonly string _stateDir = Directory.CreateTempSubdirectory("garden-test-actors-").FullName;
    private readonly IActorRef _host;

    public ProcessLifetimeTests() : base(Garden.Protocol.Journal.ProtocolConfig.Default().WithFallback(
        "akka.persistence.snapshot-store.plugin = \"akka.persistence.snapshot-store.inmem\""))
    {
        _agent = new FakeAgent(_log);
        var baseRootfs = Directory.CreateDirectory(Path.Combine(_stateDir, "base")).FullName;
        var settings = GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
            $"garden {{ state-dir = \"{_stateDir}\", default-rootfs = \"{baseRootfs}\", stop-grace = 1s, destroy-grace = 1s }}"));
        var effects = new ContainerEffects(new FakeOciRuntime(_log), new FakeRootfs(_log), new FakeCgroups(_log), _agent,
            new FakeDiskQuota(_log), new FakeOomNotifier(), new FakeNetwork(_log), new FakeFirewall(_log), new FakeUserNamespaces(_log));
        _host = Sys.ActorOf(HostActor.Props(settings, effects, new FakeHostResources()), "containers");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Directory.Delete(_stateDir, recursive: true);
    }

    private string Create(string handle) =>
        _host.Ask<ContainerCreated>(new CreateContainer(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false)),
            TimeSpan.FromSeconds(5)).Result.Handle;

    private static ProcessSpec Proc(string id) => new(id, "/bin/x", [], [], "", "", [], null);

    /// <summary>The ProcessActors of a container now (their names are "id~n").</summary>
    private async Task<List<string>> ProcessActors(string handle)
    {
        var container = (await Sys.ActorSelection($"/user/containers/{handle}~*").Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(3))).Subject!;
        var names = new List<string>();
        for (int n = 1; n <= 20; n++)
            foreach (var id in new[] { "p1", "p2", "bg" })
            {
                var who = await Sys.ActorSelection(container.Path / $"{id}~{n}").Ask<ActorIdentity>(new Identify(n), TimeSpan.FromSeconds(3));
                if (who.Subject is not null) names.Add($"{id}~{n}");
            }
        return names;
    }

    private async Task<List<ContainerEvent>> Exits(System.Threading.Channels.Channel<ContainerEvent> events, TimeSpan wait)
    {
        var seen = new List<ContainerEvent>();
        using var cts = new CancellationTokenSource(wait);
        try
        {
            while (true)
            {
                var e = await events.Reader.ReadAsync(cts.Token);
                if (e.Kind == ContainerEvent.ProcessExited) seen.Add(e);
            }
        }
        catch (OperationCanceledException)
        {
        }
        return seen;
    }

    [Fact]
    public async Task The_actor_of_an_attached_run_goes_when_its_client_does_and_an_attach_after_still_gets_the_exit()
    {
        var h = Create("att");
        var events = System.Threading.Channels.Channel.CreateUnbounded<ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        _agent.Behaviour = _ => ("out", 3);
        var started = await _host.Ask<ProcessStarted>(new RunProcess(h, Proc("p1"), Detach: false), TimeSpan.FromSeconds(5));
        Assert.Equal(["p1~1"], await ProcessActors(h));
        while (await started.Stream!.ReadAsync(default) is { } e && e.KindCase != Protocol.Agent.AgentEvent.KindOneofCase.Exited)
        {
        }
        await started.Stream.DisposeAsync();
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));

        // a late attach: a new actor for it, the exit code from the agent, and no second event
        var attached = await _host.Ask<ProcessAttached>(new AttachProcess(h, "p1", 0), TimeSpan.FromSeconds(5));
        Protocol.Agent.AgentEvent? last = null;
        while (await attached.Stream.ReadAsync(default) is { } e) last = e;
        Assert.Equal(3, last!.Exited.ExitCode);
        await attached.Stream.DisposeAsync();
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));
        var exits = await Exits(events, TimeSpan.FromSeconds(2.5)); // the exit watcher has had its turn too
        Assert.Single(exits);
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task The_actor_of_a_detached_run_goes_once_the_exit_watcher_has_published_its_exit()
    {
        var h = Create("det");
        var events = System.Threading.Channels.Channel.CreateUnbounded<ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        _agent.Behaviour = _ => ("", 7);
        await _host.Ask<ProcessStarted>(new RunProcess(h, Proc("bg"), Detach: true), TimeSpan.FromSeconds(5));
        var exits = await Exits(events, TimeSpan.FromSeconds(2.5));
        Assert.Equal(("bg", (int?)7), (exits.Single().ProcessId, exits.Single().ExitCode));
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task The_exit_watcher_has_one_list_out_at_a_time()
    {
        var h = Create("slow");
        var events = System.Threading.Channels.Channel.CreateUnbounded<ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        var frozen = new TaskCompletionSource();
        _agent.ListGate = frozen.Task;
        int before = _agent.ListCalls;
        await _host.Ask<ProcessStarted>(new RunProcess(h, Proc("p2"), Detach: true), TimeSpan.FromSeconds(5));
        await Task.Delay(4500); // four ticks while the agent does not answer
        Assert.Equal(1, _agent.ListCalls - before);
        _agent.ListGate = null;
        frozen.SetResult();
        var exits = await Exits(events, TimeSpan.FromSeconds(2.5));
        Assert.Equal("p2", exits.Single().ProcessId);
        Sys.Stop(subscriber);
    }
}
