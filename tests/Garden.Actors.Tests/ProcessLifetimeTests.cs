using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Bounded growth on the daemon's side: a ProcessActor goes once its process is done, a later attach goes through
/// the agent (without a second "process exited" event), and the exit watcher has one List out at a time.</summary>
public sealed class ProcessLifetimeTests() : ActorTest("lifetime")
{
    private string Create(string handle) =>
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false))).Handle;

    private static ProcessSpec Proc(string id) => new(id, "/bin/x", [], [], "", "", [], null);

    /// <summary>The ProcessActors of a container now (their names are "id~n").</summary>
    private async Task<List<string>> ProcessActors(string handle)
    {
        var container = (await Sys.ActorSelection($"/user/host/{handle}~*").Ask<ActorIdentity>(new Identify(1), TimeSpan.FromSeconds(3))).Subject!;
        var names = new List<string>();
        for (int n = 1; n <= 20; n++)
            foreach (var id in new[] { "p1", "p2", "bg" })
            {
                var who = await Sys.ActorSelection(container.Path / $"{id}~{n}").Ask<ActorIdentity>(new Identify(n), TimeSpan.FromSeconds(3));
                if (who.Subject is not null) names.Add($"{id}~{n}");
            }
        return names;
    }

    /// <summary>The exits published while the exit watch has its turns: it ticks (virtual time) until it has nothing left
    /// to watch and stops; then a moment for what it published to arrive.</summary>
    private async Task<List<EventsProtocol.ContainerEvent>> Exits(System.Threading.Channels.Channel<EventsProtocol.ContainerEvent> events, string handle)
    {
        for (var i = 0; i < 20 && ArmedTimers(handle, "ExitWatchTick").Count > 0; i++)
        {
            Clock.Advance(TimeSpan.FromSeconds(1));
            await Host.Ask<ContainerProtocol.PropertiesResult>(new ContainerProtocol.GetProperties(handle), TimeSpan.FromSeconds(5)); // the tick was taken
            await Task.Delay(20); // its List answered (a tick while one is out is skipped: the next one goes)
        }
        Assert.Empty(ArmedTimers(handle, "ExitWatchTick")); // the watch ended: nothing it could still publish
        var seen = new List<EventsProtocol.ContainerEvent>();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        try
        {
            while (true)
            {
                var e = await events.Reader.ReadAsync(cts.Token);
                if (e.Kind == EventsProtocol.ContainerEvent.ProcessExited) seen.Add(e);
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
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        Agent.Behaviour = _ => ("out", 3);
        var started = await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p1"), Detach: false), TimeSpan.FromSeconds(5));
        Assert.Equal(["p1~1"], await ProcessActors(h));
        while (await started.Stream!.ReadAsync(default) is { } e && e.KindCase != Protocol.Agent.AgentEvent.KindOneofCase.Exited)
        {
        }
        await started.Stream.DisposeAsync();
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));

        // a late attach: a new actor for it, the exit code from the agent, and no second event
        var attached = await Host.Ask<ProcessProtocol.ProcessAttached>(new ContainerProtocol.AttachProcess(h, "p1", 0), TimeSpan.FromSeconds(5));
        Protocol.Agent.AgentEvent? last = null;
        while (await attached.Stream.ReadAsync(default) is { } e) last = e;
        Assert.Equal(3, last!.Exited.ExitCode);
        await attached.Stream.DisposeAsync();
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));
        var exits = await Exits(events, h); // the exit watcher has had its turns too
        Assert.Single(exits);
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task The_actor_of_a_detached_run_goes_once_the_exit_watcher_has_published_its_exit()
    {
        var h = Create("det");
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        Agent.Behaviour = _ => ("", 7);
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("bg"), Detach: true), TimeSpan.FromSeconds(5));
        ArmedTimer(h, "ExitWatchTick"); // nobody follows it: the exit watch looks for it
        var exits = await Exits(events, h);
        Assert.Equal(("bg", (int?)7), (exits.Single().ProcessId, exits.Single().ExitCode));
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task The_exit_watcher_has_one_list_out_at_a_time()
    {
        var h = Create("slow");
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        var frozen = new TaskCompletionSource();
        Agent.ListGate = frozen.Task;
        int before = Agent.ListCalls;
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p2"), Detach: true), TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(1), ArmedTimer(h, "ExitWatchTick").Interval);
        for (var i = 0; i < 4; i++) Clock.Advance(TimeSpan.FromSeconds(1)); // four ticks while the agent does not answer
        await Host.Ask<ContainerProtocol.PropertiesResult>(new ContainerProtocol.GetProperties(h), TimeSpan.FromSeconds(5)); // the container has taken them
        await AwaitConditionAsync(() => Task.FromResult(Agent.ListCalls - before >= 1), TimeSpan.FromSeconds(5));
        await Task.Delay(200); // a second List, had it been started, would have reached the agent by now
        Assert.Equal(1, Agent.ListCalls - before);
        Agent.ListGate = null;
        frozen.SetResult();
        var exits = await Exits(events, h);
        Assert.Equal("p2", exits.Single().ProcessId);
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task With_an_agent_that_waits_a_detached_exit_is_published_without_any_poll()
    {
        Agent.WaitsForExits = true;
        Agent.SpawnsRunning = true;
        var h = Create("waits");
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        int lists = Agent.ListCalls;
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("bg"), Detach: true), TimeSpan.FromSeconds(5));
        await AwaitConditionAsync(() => Task.FromResult(Agent.WaitCalls == 1), TimeSpan.FromSeconds(5));
        await Task.Delay(100);
        Assert.Equal(1, Agent.WaitCalls); // one wait held, not asked again meanwhile
        Assert.Empty(ArmedTimers(h, "ExitWatchTick"));
        await Agent.SignalAsync("bg", 9, default); // it exits: the held wait answers, no clock moves
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        EventsProtocol.ContainerEvent e;
        do e = await events.Reader.ReadAsync(cts.Token); while (e.Kind != EventsProtocol.ContainerEvent.ProcessExited);
        Assert.Equal("bg", e.ProcessId);
        await Task.Delay(200);
        Assert.Equal(1, Agent.WaitCalls); // nothing pending: no connection held for nothing
        Assert.Equal(lists, Agent.ListCalls);
        Assert.Empty(ArmedTimers(h, "ExitWatchTick"));
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task An_agent_that_refuses_the_wait_is_polled_with_list_and_not_asked_to_wait_again()
    {
        var h = Create("oldagent"); // the fake refuses WaitExits as an agent of an earlier build does
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        Agent.Behaviour = _ => ("", 3);
        int waits = Agent.WaitCalls;
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p1"), Detach: true), TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(1), ArmedTimer(h, "ExitWatchTick").Interval);
        Assert.Equal(("p1", (int?)3), (await Exits(events, h)).Select(x => (x.ProcessId, x.ExitCode)).Single());
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p2"), Detach: true), TimeSpan.FromSeconds(5));
        ArmedTimer(h, "ExitWatchTick");
        Assert.Equal("p2", (await Exits(events, h)).Single().ProcessId);
        Assert.Equal(1, Agent.WaitCalls - waits); // refused once: this container polls from then on
        Sys.Stop(subscriber);
    }

    [Fact]
    public async Task A_wait_that_fails_polls_until_a_list_answers_then_waits_again()
    {
        Agent.WaitsForExits = true;
        Agent.SpawnsRunning = true;
        var h = Create("flaky");
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p1"), Detach: true), TimeSpan.FromSeconds(5));
        await AwaitConditionAsync(() => Task.FromResult(Agent.WaitCalls == 1), TimeSpan.FromSeconds(5));
        Agent.Reachable = false; // the held connection ends with the agent
        Assert.Equal(TimeSpan.FromSeconds(1), ArmedTimer(h, "ExitWatchTick").Interval);
        int lists = Agent.ListCalls;
        Agent.Reachable = true;
        Clock.Advance(TimeSpan.FromSeconds(1));
        await AwaitConditionAsync(() => Task.FromResult(Agent.ListCalls > lists), TimeSpan.FromSeconds(5));
        await AwaitConditionAsync(() => Task.FromResult(Agent.WaitCalls == 2), TimeSpan.FromSeconds(5)); // waiting again
        AwaitAssert(() => Assert.Empty(ArmedTimers(h, "ExitWatchTick")));
        await Agent.SignalAsync("p1", 15, default);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        EventsProtocol.ContainerEvent e;
        do e = await events.Reader.ReadAsync(cts.Token); while (e.Kind != EventsProtocol.ContainerEvent.ProcessExited);
        Assert.Equal("p1", e.ProcessId);
        Sys.Stop(subscriber);
    }

    /// <summary>An attached Run whose client reads its exit within <see cref="ProcessActor.StreamSeesExitFor"/> needs no
    /// exit watch: no wait for exits is held at the agent for it (it was opened at every Run, right after Spawned).</summary>
    [Fact]
    public async Task An_attached_run_whose_client_reads_its_exit_soon_opens_no_wait_for_exits()
    {
        Agent.WaitsForExits = true;
        var h = Create("quick");
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        Agent.Behaviour = _ => ("out", 4);
        var started = await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p1"), Detach: false), TimeSpan.FromSeconds(5));
        while (await started.Stream!.ReadAsync(default) is { } e && e.KindCase != Protocol.Agent.AgentEvent.KindOneofCase.Exited)
        {
        }
        await started.Stream.DisposeAsync();
        await AwaitAssertAsync(async () => Assert.Empty(await ProcessActors(h)), TimeSpan.FromSeconds(5));
        Clock.Advance(ProcessActor.StreamSeesExitFor + TimeSpan.FromSeconds(1));
        await Task.Delay(200); // a wait, had one been asked for, would have reached the agent by now
        Assert.Equal(0, Agent.WaitCalls);
        Assert.Equal(("p1", (int?)4), (await Exits(events, h)).Select(x => (x.ProcessId, x.ExitCode)).Single());
        Sys.Stop(subscriber);
    }

    /// <summary>An attached Run whose client does not read: once <see cref="ProcessActor.StreamSeesExitFor"/> has passed
    /// the container waits for its exit, and publishes it when it comes.</summary>
    [Fact]
    public async Task An_attached_run_nobody_reads_is_watched_for_its_exit_after_a_moment()
    {
        Agent.WaitsForExits = true;
        Agent.SpawnsRunning = true;
        var h = Create("unread");
        var events = System.Threading.Channels.Channel.CreateUnbounded<EventsProtocol.ContainerEvent>();
        var subscriber = EventFeed.Subscribe(Sys, events.Writer, h);
        var started = await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p1"), Detach: false), TimeSpan.FromSeconds(5));
        await Task.Delay(200);
        Assert.Equal(0, Agent.WaitCalls); // the stream may still see it
        Clock.Advance(ProcessActor.StreamSeesExitFor);
        await AwaitConditionAsync(() => Task.FromResult(Agent.WaitCalls == 1), TimeSpan.FromSeconds(5));
        await Agent.SignalAsync("p1", 9, default); // it exits; its client still reads nothing
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        EventsProtocol.ContainerEvent e;
        do e = await events.Reader.ReadAsync(cts.Token); while (e.Kind != EventsProtocol.ContainerEvent.ProcessExited);
        Assert.Equal("p1", e.ProcessId);
        await started.Stream!.DisposeAsync();
        Sys.Stop(subscriber);
    }

    /// <summary>An attached Run whose client goes before the exit: the container waits for the exit at once (no stream
    /// is left to see it), without the moment's wait.</summary>
    [Fact]
    public async Task An_attached_run_whose_client_goes_before_the_exit_is_watched_at_once()
    {
        Agent.WaitsForExits = true;
        Agent.SpawnsRunning = true;
        var h = Create("gone");
        var started = await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("p1"), Detach: false), TimeSpan.FromSeconds(5));
        await started.Stream!.DisposeAsync();
        await AwaitConditionAsync(() => Task.FromResult(Agent.WaitCalls == 1), TimeSpan.FromSeconds(5)); // no clock moved
        Assert.Single(await ProcessActors(h)); // its actor stays until the exit is seen
    }
}
