using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Protocol.Agent;
using Garden.Linux.Network;
using Garden.Linux.UserNamespaces;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

public sealed class HostActorTests() : ActorTest("actors", "max-containers = 3")
{
    private static ContainerSpec Spec(string handle = "", params (string, string)[] props) =>
        new(handle, "", [], props.ToImmutableDictionary(p => p.Item1, p => p.Item2), false);

    private static ProcessSpec Proc(string path, string id = "") => new(id, path, [], [], "", "", [], null);

    private string Create(string handle = "", params (string, string)[] props) => Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec(handle, props))).Handle;

    [Fact]
    public void Create_mounts_the_rootfs_then_starts_the_runtime_and_generates_a_handle()
    {
        var handle = Create();
        Assert.Equal(11, handle.Length);
        // its user namespace first (the network and rootfs need it); the network's links, then its rules, are made while
        // the rootfs mounts and runc starts (runc joins the namespace through the holder): all of it before the answer
        var calls = Calls.All.ToList();
        Assert.Equal(6, calls.Count);
        Assert.Contains(new Call.CgroupApplied(handle), calls); // garden.default-limits: pids
        Assert.Equal("0 4294967294 1, 1 1 4294967293", IdMapping.Garden.ToString());
        Assert.Equal(new Call.UserNamespaceMade(handle, IdMapping.Garden), calls[0]);
        Assert.True(calls.IndexOf(new Call.RootfsCreated(handle)) < calls.IndexOf(new Call.Ran(handle)), string.Join(", ", calls));
        Assert.True(calls.IndexOf(new Call.NetworkSetUp(handle, Ipv4.Parse("10.254.0.2", "t"))) is >= 0 and var up
                    && up < calls.IndexOf(new Call.FirewallApplied(handle, 0, 0)), string.Join(", ", calls));
        Assert.Contains(handle, Runtime.Containers);
    }

    [Fact]
    public async Task Creates_sent_at_once_are_admitted_one_after_another_on_the_pools_the_earlier_ones_took()
    {
        // four at once against max-containers = 3: the next Create is decided while the registrations before it are still
        // being journaled, on the state with them applied, so three get three different addresses and one is refused
        var asks = Enumerable.Range(0, 4).Select(i => Host.Ask<object>(new HostProtocol.CreateContainer(Spec($"at-once-{i}")), AskTimeout)).ToList();
        var answers = await Task.WhenAll(asks.Select(async a => { try { return await a; } catch (Exception e) { return e; } }));
        var created = answers.OfType<HostProtocol.ContainerCreated>().Select(c => c.Handle).ToList();
        Assert.Equal(3, created.Count);
        Assert.Equal(ErrorKind.ResourceExhausted, Assert.IsType<GardenException>(Assert.Single(answers.OfType<Exception>()).GetBaseException()).Kind);
        var addresses = Calls.All.OfType<Call.NetworkSetUp>().Select(n => n.Address).ToList();
        Assert.Equal(3, addresses.Count);
        Assert.Equal(3, addresses.Distinct().Count());
        // every registration is in the journal: a restarted host knows all three, with the same addresses
        Restart();
        Assert.Equal(created.Order(), List().Order());
        foreach (var h in created) await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(h));
        Assert.Empty(List());
    }

    [Fact]
    public void Duplicate_handle_is_AlreadyExists_and_touches_nothing()
    {
        Create("dup");
        var e = Error(new HostProtocol.CreateContainer(Spec("dup")));
        Assert.Equal(ErrorKind.AlreadyExists, e.Kind);
        Assert.Contains("dup", e.Message);
        Assert.Equal(1, Calls.Count<Call.Ran>());
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("../escape")]
    [InlineData("-leading-dash")]
    [InlineData("slash/inside")]
    public void Invalid_handle_is_InvalidArgument_naming_the_handle(string handle)
    {
        var e = Error(new HostProtocol.CreateContainer(Spec(handle)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith("handle:", e.Message);
        Assert.Contains(handle, e.Message);
        Assert.Empty(Calls.All);
    }

    [Fact]
    public void Missing_rootfs_is_InvalidArgument_naming_the_rootfs()
    {
        var e = Error(new HostProtocol.CreateContainer(Spec("r") with { Rootfs = "/does/not/exist" }));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("/does/not/exist", e.Message);
        Assert.Equal(0, Calls.Count<Call.Ran>());
    }

    [Fact]
    public void A_failed_create_undoes_its_steps_in_reverse_and_frees_the_handle()
    {
        Runtime.FailRunWith = "exec format error";
        var e = Error(new HostProtocol.CreateContainer(Spec("broken")));
        Assert.Equal(ErrorKind.Internal, e.Kind);
        Assert.Contains("exec format error", e.Message);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Empty(Runtime.Containers);
        Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", "broken")));
        AwaitAssert(() => Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("broken")).Kind));

        Runtime.FailRunWith = null;
        Assert.Equal("broken", Create("broken"));
    }

    [Fact]
    public void Unknown_handle_is_NotFound()
    {
        var e = Error(new ContainerProtocol.GetInfo("nope"));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
        Assert.Contains("nope", e.Message);
    }

    [Fact]
    public void A_bad_request_is_InvalidArgument_whichever_container_it_names()
    {
        var h = Create("v");
        foreach (var handle in new[] { h, "nope" })
        {
            Assert.StartsWith("signal:", Error(new ContainerProtocol.SignalProcess(handle, "p", 0)).Message);
            Assert.StartsWith("rlimit:", Error(new ContainerProtocol.RunProcess(handle, Proc("/bin/true") with { Rlimits = [new RlimitSpec("nofiles", 1, 1)] }, false)).Message);
            Assert.StartsWith("env:", Error(new ContainerProtocol.RunProcess(handle, Proc("/bin/true") with { Env = ["X"] }, false)).Message);
        }
        Assert.Equal(0, Calls.Count<Call.Spawned>());
    }

    [Fact]
    public void Max_containers_is_ResourceExhausted()
    {
        Create("a"); Create("b"); Create("c");
        Assert.Equal(ErrorKind.ResourceExhausted, Error(new HostProtocol.CreateContainer(Spec("d"))).Kind);
    }

    [Fact]
    public void List_filters_by_every_property()
    {
        Create("x", ("env", "prod"), ("team", "a"));
        Create("y", ("env", "prod"), ("team", "b"));
        Create("z", ("env", "dev"));
        Assert.Equal(["x", "y", "z"], List());
        Assert.Equal(["x", "y"], List(("env", "prod")));
        Assert.Equal(["y"], List(("env", "prod"), ("team", "b")));
        Assert.Empty(List(("env", "staging")));
    }

    [Fact]
    public async Task A_List_right_after_an_answer_sees_the_change_it_answered()
    {
        // the container tells the host's directory before it answers: no waiting here
        var h = Create("seen", ("env", "dev"));
        Assert.Equal([h], List(("env", "dev")));
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.SetProperty(h, "env", "prod"));
        Assert.Equal([h], List(("env", "prod")));
        Assert.Empty(List(("env", "dev")));
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.RemoveProperty(h, "env"));
        Assert.Empty(List(("env", "prod")));
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.StopContainer(h, Kill: true));
        Assert.Equal([h], List()); // a stopped container is listed
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(h));
        Assert.Empty(List());
    }

    [Fact]
    public async Task Properties_can_be_set_read_and_removed()
    {
        var h = Create("p", ("a", "1"));
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.SetProperty(h, "b", "2"));
        Assert.Equal("2", (await AskAsync<ContainerProtocol.PropertyValue>(new ContainerProtocol.GetProperty(h, "b"))).Value);
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.RemoveProperty(h, "a"));
        var props = (await AskAsync<ContainerProtocol.PropertiesResult>(new ContainerProtocol.GetProperties(h))).Properties;
        Assert.Equal(new Dictionary<string, string> { ["b"] = "2" }, props);
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetProperty(h, "a")).Kind);
    }

    [Fact]
    public async Task Run_streams_output_then_the_exit_code()
    {
        var h = Create("run");
        Agent.Behaviour = s => ($"hello from {s.Path}\n", 7);
        var started = await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("/bin/echo"), false));
        Assert.NotNull(started.Stream);
        var output = await started.Stream!.ReadAsync(default);
        Assert.Equal("hello from /bin/echo\n", output!.Output.Data.ToStringUtf8());
        var exit = await started.Stream.ReadAsync(default);
        Assert.Equal(7, exit!.Exited.ExitCode);
    }

    [Fact]
    public void Run_of_a_missing_executable_is_InvalidArgument_naming_the_path()
    {
        var h = Create("noexec");
        var e = Error(new ContainerProtocol.RunProcess(h, Proc("/missing/tool"), false));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("/missing/tool", e.Message);
    }

    [Fact]
    public async Task Duplicate_process_id_is_AlreadyExists()
    {
        var h = Create("dupproc");
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("/bin/true", "job"), true));
        Assert.Equal(ErrorKind.AlreadyExists, Error(new ContainerProtocol.RunProcess(h, Proc("/bin/true", "job"), true)).Kind);
    }

    [Fact]
    public async Task Attach_replays_a_detached_process_and_gives_its_exit_code()
    {
        var h = Create("att");
        Agent.Behaviour = _ => ("abcdef", 3);
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("/bin/x", "p1"), true));
        var attached = await AskAsync<ProcessProtocol.ProcessAttached>(new ContainerProtocol.AttachProcess(h, "p1", 2));
        var chunk = await attached.Stream.ReadAsync(default);
        Assert.Equal(2ul, chunk!.Output.Offset);
        Assert.Equal("cdef", chunk.Output.Data.ToStringUtf8());
        Assert.Equal(3, (await attached.Stream.ReadAsync(default))!.Exited.ExitCode);
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.AttachProcess(h, "nope", 0)).Kind);
    }

    [Fact]
    public async Task A_stopped_container_refuses_new_processes_but_stays()
    {
        var h = Create("stop");
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("/bin/sleep", "s"), true));
        Agent.KeepRunning("s");
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.StopContainer(h, Kill: false));
        Assert.Equal(1, Calls.Count(new Call.SignalledAll(15)));
        var e = Error(new ContainerProtocol.RunProcess(h, Proc("/bin/true"), true));
        Assert.Equal(ErrorKind.FailedPrecondition, e.Kind);
        Assert.Contains("stopped", e.Message);
        var info = await AskAsync<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(h));
        Assert.Equal(ContainerLifecycle.Stopped, info.State);
    }

    [Fact]
    public async Task Destroy_kills_deletes_and_unmounts_then_forgets_the_handle()
    {
        var h = Create("gone");
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(h));
        // the answer comes once nothing runs; the rest is released right after it
        AwaitAssert(() => Assert.Contains(new Call.RootfsDestroyed("gone"), Calls.All));
        AwaitAssert(() => Assert.Contains(new Call.NetworkTornDown("gone"), Calls.All));
        var calls = Calls.All.ToList();
        var released = calls.IndexOf(new Call.CgroupReleased("gone"));
        Assert.Equal([new Call.SignalledAll(9), new Call.Killed("gone", 9), new Call.Deleted("gone"), new Call.CgroupReleased("gone")],
            calls.Skip(released - 3).Take(4));
        // then, in parallel, the rules, the network and the rootfs
        var rest = calls.Skip(released + 1).ToList();
        Assert.Equal(3, rest.Count);
        Assert.Equal(new HashSet<Call> { new Call.FirewallRemoved("gone"), new Call.NetworkTornDown("gone"), new Call.RootfsDestroyed("gone") },
            rest.ToHashSet());
        Assert.Empty(Runtime.Containers);
        AwaitAssert(() => Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo(h)).Kind));
        Assert.Equal(ErrorKind.NotFound, Error(new HostProtocol.DestroyContainer(h)).Kind);
    }

    [Fact]
    public async Task Destroy_answers_once_nothing_runs_and_the_pools_stay_taken_until_the_release_ended()
    {
        var slowRules = new TaskCompletionSource();
        Firewall.RemoveGate = slowRules.Task; // iptables-restore takes its time
        Create("first");
        Assert.Contains(new Call.NetworkSetUp("first", Ipv4.Parse("10.254.0.2", "t")), Calls.All);
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("first"));
        // answered: its processes are dead and runc forgot it; its handle is free and nothing shows it any more
        Assert.Empty(Runtime.Containers);
        Assert.Contains(new Call.CgroupReleased("first"), Calls.All);
        Assert.DoesNotContain(new Call.FirewallRemoved("first"), Calls.All);
        Assert.Empty(List());
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("first")).Kind);
        Assert.Equal(ErrorKind.NotFound, Error(new HostProtocol.DestroyContainer("first")).Kind);
        // its address is still its own while its rules and links are removed: a new container gets another one
        Create("second");
        Assert.Contains(new Call.NetworkSetUp("second", Ipv4.Parse("10.254.0.6", "t")), Calls.All);

        slowRules.SetResult();
        AwaitAssert(() => Assert.Contains(new Call.FirewallRemoved("first"), Calls.All));
        AwaitAssert(() => Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", "first"))));
        // released: its address is back in the pool
        AwaitAssert(() =>
        {
            var third = $"third{Guid.NewGuid():N}"[..12];
            Create(third);
            Assert.Contains(new Call.NetworkSetUp(third, Ipv4.Parse("10.254.0.2", "t")), Calls.All);
        });
    }

    [Fact]
    public async Task A_create_of_a_handle_still_being_released_waits_for_the_release_and_is_not_undone_by_it()
    {
        var slowRules = new TaskCompletionSource();
        Firewall.RemoveGate = slowRules.Task;
        Create("again");
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("again"));
        var create = AskAsync<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("again")));
        // other containers are made meanwhile
        Create("other");
        Assert.False(create.IsCompleted);
        Assert.Equal(1, Calls.Count(new Call.RootfsCreated("again")));

        slowRules.SetResult();
        Assert.Equal("again", (await create).Handle);
        var calls = Calls.All.ToList();
        Assert.True(calls.IndexOf(new Call.FirewallRemoved("again")) < calls.LastIndexOf(new Call.RootfsCreated("again")), string.Join(", ", calls));
        // the new one is whole: its root, its runtime container, its depot
        Assert.Equal(1, Calls.Count(new Call.RootfsDestroyed("again")));
        Assert.Contains("again", Runtime.Containers);
        Assert.True(Directory.Exists(Path.Combine(StateDir, "depot", "again")));
        Assert.Equal(ContainerLifecycle.Active, (await AskAsync<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("again"))).State);
        Assert.Equal(["again", "other"], List());
    }

    [Fact]
    public async Task A_release_that_fails_keeps_what_it_holds_and_is_tried_again()
    {
        Create("busy");
        Rootfs.FailNextDestroy = new Garden.Linux.Rootfs.RootfsException("umount: target is busy");
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("busy"));
        Assert.Empty(List());
        // its depot and mount point are the handle's: a Create of it is refused, saying why, until they are gone
        AwaitAssert(() =>
        {
            var e = Error(new HostProtocol.CreateContainer(Spec("busy")));
            Assert.Equal(ErrorKind.Unavailable, e.Kind);
            Assert.Contains("still being released", e.Message);
        });
        Assert.Equal(1, Rootfs.MountedCount);
        Clock.Advance(TimeSpan.FromSeconds(5)); // the retry
        AwaitAssert(() => Assert.Equal(0, Rootfs.MountedCount));
        AwaitAssert(() => Assert.Equal("busy", Create("busy")));
    }

    [Fact]
    public async Task A_stopping_host_answers_once_every_pending_release_ended_and_was_journaled()
    {
        var slowRules = new TaskCompletionSource();
        Firewall.RemoveGate = slowRules.Task;
        Create("late");
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("late"));
        // gardend stops (CoordinatedShutdown's service-stop asks this) while the release still removes the rules
        var finished = AskAsync<HostProtocol.Done>(HostProtocol.FinishReleases.Instance);
        await Task.Delay(300);
        Assert.False(finished.IsCompleted);
        Assert.True(Directory.Exists(Path.Combine(StateDir, "depot", "late")));

        slowRules.SetResult();
        await finished;
        // answered after everything went, the depot last, and after ReleaseFinished was journaled: a next start has
        // nothing to finish
        Assert.Contains(new Call.FirewallRemoved("late"), Calls.All);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", "late")));
        Assert.Equal(1, Calls.Count(new Call.RootfsDestroyed("late")));
        Restart();
        await Task.Delay(300);
        Assert.Equal(1, Calls.Count(new Call.RootfsDestroyed("late"))); // (a pending one would be released again)
    }

    [Fact]
    public async Task A_stopping_host_waits_for_a_destroy_in_flight_and_its_release()
    {
        // the question comes before the container is gone: the client's answer and the SIGTERM may overtake the
        // journal writes that free its handle and start its release
        var slowAgent = new TaskCompletionSource();
        Create("inflight");
        Agent.ListGate = slowAgent.Task;
        var lists = Agent.ListCalls;
        var destroy = AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("inflight"));
        AwaitAssert(() => Assert.True(Agent.ListCalls > lists)); // its processes are being stopped
        var finished = AskAsync<HostProtocol.Done>(HostProtocol.FinishReleases.Instance);
        await Task.Delay(300);
        Assert.False(finished.IsCompleted);

        slowAgent.SetResult();
        await destroy;
        await finished;
        Assert.Contains(new Call.FirewallRemoved("inflight"), Calls.All);
        Assert.Contains(new Call.NetworkTornDown("inflight"), Calls.All);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", "inflight")));
    }

    [Fact]
    public async Task A_stopping_host_tries_a_failed_release_again_at_once_instead_of_after_its_backoff()
    {
        Create("stuck");
        Rootfs.FailNextDestroy = new Garden.Linux.Rootfs.RootfsException("umount: target is busy");
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("stuck"));
        AwaitAssert(() => Assert.Equal(ErrorKind.Unavailable, Error(new HostProtocol.CreateContainer(Spec("stuck"))).Kind));
        Assert.Equal(1, Rootfs.MountedCount); // failed once; its retry is 5 s away (the virtual clock does not move)

        await AskAsync<HostProtocol.Done>(HostProtocol.FinishReleases.Instance);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", "stuck")));
    }

    [Fact]
    public async Task A_stopping_host_with_nothing_pending_answers_at_once()
    {
        Create("idle");
        await AskAsync<HostProtocol.Done>(HostProtocol.FinishReleases.Instance, TimeSpan.FromSeconds(1));
        Assert.Contains("idle", List()); // it only waits: it stops nothing
    }

    [Fact]
    public async Task Destroy_works_when_the_agent_is_gone()
    {
        var h = Create("dead");
        Agent.Reachable = false;
        await AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(h));
        Assert.Empty(Runtime.Containers);
    }

    [Fact]
    public async Task Capacity_reports_the_host_and_the_configured_maximum()
    {
        var c = await AskAsync<HostProtocol.Capacity>(HostProtocol.GetCapacity.Instance);
        Assert.Equal(new HostProtocol.Capacity(1024, 2048, 3), c);
    }

    [Fact]
    public async Task SetTty_resizes_a_process_terminal_and_bad_sizes_or_processes_get_clear_errors()
    {
        var h = Create("tty");
        var spec = new ProcessSpec("t1", "/bin/sh", [], [], "", "", [], new TtySize(24, 80));
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, spec, Detach: true));
        await AskAsync<HostProtocol.Done>(new ContainerProtocol.SetProcessTty(h, "t1", new TtySize(50, 132)));
        Assert.Equal((50u, 132u), Agent.TtyOf("t1"));
        Assert.Equal(ErrorKind.InvalidArgument, Error(new ContainerProtocol.SetProcessTty(h, "t1", new TtySize(0, 80))).Kind);
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.SetProcessTty(h, "nope", new TtySize(10, 10))).Kind);
        await AskAsync<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Proc("/bin/true", "plain"), Detach: true));
        Assert.Contains("no terminal", Error(new ContainerProtocol.SetProcessTty(h, "plain", new TtySize(10, 10))).Message);
    }
}
