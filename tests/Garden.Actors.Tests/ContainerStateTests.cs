using System.Collections.Immutable;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Kernel;
using Garden.Actors.Process;
using Garden.Linux.Cgroups;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Protocol.Journal;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The pure decisions behind the ContainerActor, without an ActorSystem: the transition table, what each
/// request and each effect's outcome becomes (events, effect, answer, events published), and recovery.</summary>
public sealed class ContainerStateTests
{
    private static readonly ContainerSpec Spec = new("h", "/r", ["A=1"], ImmutableDictionary<string, string>.Empty, false);
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
    private static readonly NetworkAllocation Net = new(Ipv4Cidr.Of(Ipv4.Parse("10.9.0.0", "t"), 30), Ipv4.Parse("10.9.0.2", "t"));

    private static ContainerState Creating(ContainerSpec? spec = null) =>
        ContainerState.Empty("h").Apply(new CreateStarted { Spec = ContainerState.ToRecord(spec ?? Spec) });

    private static ContainerState Active(ContainerSpec? spec = null) =>
        Creating(spec).Apply(new CreateCompleted { RootfsMount = "/m", CreatedUnixMs = 1 });

    private static ContainerState In(ContainerLifecycle lifecycle, string note = "") => Active().Apply(ContainerState.Changed(lifecycle, note));

    private static Decision Decide(ContainerState s, object command) => s.Decide(s.Phase, command, Now);

    private static GardenException Refused(ContainerState s, object command, ContainerPhase? phase = null)
    {
        var d = s.Decide(phase ?? s.Phase, command, Now);
        Assert.Empty(d.Events);
        Assert.Null(d.Effect);
        return Assert.IsType<GardenException>(d.Error);
    }

    private static ProcessSpec Proc(string id = "p", string path = "/bin/x") => new(id, path, [], [], "", "", [], null);

    // ---- the table ----

    [Fact]
    public void The_table_covers_every_phase_and_every_kind_of_request()
    {
        foreach (var phase in Enum.GetValues<ContainerPhase>())
            foreach (var kind in Enum.GetValues<CommandKind>())
                Assert.True(Enum.IsDefined(ContainerTransitions.Check(phase, kind)), $"{phase} x {kind}");
    }

    [Fact]
    public void A_container_not_created_yet_or_gone_is_an_unknown_handle_except_for_its_create()
    {
        var fresh = ContainerState.Empty("h");
        Assert.Equal(ContainerPhase.New, fresh.Phase);
        Assert.Equal(ErrorKind.NotFound, Refused(fresh, new ContainerProtocol.GetInfo("h")).Kind);
        var create = Decide(fresh, new HostProtocol.CreateContainer(Spec));
        Assert.IsType<CreateStarted>(Assert.Single(create.Events));
        Assert.Equal(new Effect.Create(Spec), create.Effect);
        Assert.True(create.Await); // answered by the create's outcome
        Assert.True(create.EffectBeside); // its kernel work starts while CreateStarted is written (the host's registration is in)

        var gone = In(ContainerLifecycle.Destroyed);
        Assert.Equal(ContainerPhase.Gone, gone.Phase);
        Assert.Equal("unknown handle: h", Refused(gone, new HostProtocol.DestroyContainer("h")).Message);
        Assert.Equal(ErrorKind.AlreadyExists, Refused(Active(), new HostProtocol.CreateContainer(Spec)).Kind);
    }

    [Fact]
    public void A_stopped_container_runs_no_new_process_and_a_second_stop_is_done_at_once()
    {
        var stopped = In(ContainerLifecycle.Stopped, "stopped");
        var run = Refused(stopped, new ContainerProtocol.RunProcess("h", Proc(), true));
        Assert.Equal(ErrorKind.FailedPrecondition, run.Kind);
        Assert.Equal("container h is stopped: it runs no new processes", run.Message);
        var stop = Decide(stopped, new ContainerProtocol.StopContainer("h", Kill: false));
        Assert.Empty(stop.Events);
        Assert.Equal(HostProtocol.Done.Instance, stop.Reply);
        // but its processes can still be attached to, and it can be destroyed
        Assert.NotNull(Decide(stopped, new ContainerProtocol.AttachProcess("h", "p", 0)).Forward);
        Assert.IsType<Effect.Destroy>(Decide(stopped, new HostProtocol.DestroyContainer("h")).Effect);
    }

    [Fact]
    public void A_broken_container_answers_what_it_is_and_can_be_destroyed_but_refuses_the_rest_naming_why()
    {
        var broken = In(ContainerLifecycle.Broken, "cgroup gone");
        foreach (var command in new object[]
                 {
                     new ContainerProtocol.RunProcess("h", Proc(), true), new ContainerProtocol.StopContainer("h", false), new ContainerProtocol.SetLimits("h", new Limits(Pids: 5)),
                     new ContainerProtocol.SignalProcess("h", "p", 9), new ContainerProtocol.NetOut("h", []),
                 })
        {
            var e = Refused(broken, command);
            Assert.Equal(ErrorKind.FailedPrecondition, e.Kind);
            Assert.Equal("container h is broken (cgroup gone); destroy it", e.Message);
        }
        Assert.Equal(Effect.ListProcesses.Instance, Decide(broken, new ContainerProtocol.GetInfo("h")).Effect);
        Assert.IsType<ContainerProtocol.PropertiesResult>(Decide(broken, new ContainerProtocol.GetProperties("h")).Reply);
        Assert.IsType<Effect.Destroy>(Decide(broken, new HostProtocol.DestroyContainer("h")).Effect);
    }

    [Fact]
    public void While_being_destroyed_a_second_destroy_joins_the_first_and_info_needs_no_agent()
    {
        var destroying = In(ContainerLifecycle.Destroying);
        var again = Decide(destroying, new HostProtocol.DestroyContainer("h"));
        Assert.True(again.Await);
        Assert.Empty(again.Events);
        Assert.Null(again.Effect);
        var info = Assert.IsType<ContainerProtocol.ContainerInfo>(Decide(destroying, new ContainerProtocol.GetInfo("h")).Reply);
        Assert.Empty(info.ProcessIds);
        Assert.Equal("container h is being destroyed", Refused(destroying, new ContainerProtocol.GetProperties("h")).Message);
        Assert.Equal(Decision.None, Decide(destroying, new ContainerProtocol.GraceTimeUp(1))); // its grace time no longer matters
    }

    [Theory]
    [InlineData(ContainerPhase.Creating)]
    [InlineData(ContainerPhase.Changing)]
    [InlineData(ContainerPhase.Recovering)]
    public void While_a_create_a_live_change_or_a_reconcile_is_in_flight_requests_wait(ContainerPhase phase)
    {
        var s = phase == ContainerPhase.Creating ? Creating() : Active();
        foreach (var command in new object[]
                 {
                     new ContainerProtocol.GetInfo("h"), new ContainerProtocol.SetProperty("h", "k", "v"), new ContainerProtocol.SetLimits("h", new Limits(Pids: 5)), new ContainerProtocol.RunProcess("h", Proc(), true),
                     new ContainerProtocol.StopContainer("h", false), new HostProtocol.DestroyContainer("h"), ContainerProtocol.OomKilled.Instance,
                 })
            Assert.True(s.Decide(phase, command, Now).Stash, $"{command.GetType().Name} in {phase}");
    }

    [Fact]
    public void While_stopping_queries_and_process_requests_are_served_and_changes_wait()
    {
        var stopping = In(ContainerLifecycle.Stopping);
        Assert.Equal(ErrorKind.FailedPrecondition, Refused(stopping, new ContainerProtocol.RunProcess("h", Proc(), true)).Kind);
        Assert.True(Decide(stopping, new ContainerProtocol.SetLimits("h", new Limits(Pids: 5))).Stash);
        Assert.True(Decide(stopping, new HostProtocol.DestroyContainer("h")).Stash);
        Assert.NotNull(Decide(stopping, new ContainerProtocol.SignalProcess("h", "p", 15)).Forward);
        Assert.Single(Decide(stopping, new ContainerProtocol.SetProperty("h", "k", "v")).Events);
    }

    // ---- requests ----

    [Fact]
    public void Properties_are_journaled_and_missing_ones_are_NotFound_naming_the_key()
    {
        var s = Active();
        var set = Decide(s, new ContainerProtocol.SetProperty("h", "k", "v"));
        Assert.Equal(new PropertySet { Key = "k", Value = "v" }, Assert.Single(set.Events));
        Assert.Equal(HostProtocol.Done.Instance, set.Reply);
        var missing = Refused(s, new ContainerProtocol.RemoveProperty("h", "nope"));
        Assert.Equal(ErrorKind.NotFound, missing.Kind);
        Assert.Contains("\"nope\"", missing.Message);
        Assert.Equal(new ContainerProtocol.PropertyValue("v"), Decide(s.Apply(set.Events[0]), new ContainerProtocol.GetProperty("h", "k")).Reply);
    }

    [Fact]
    public void A_grace_time_is_journaled_and_logged()
    {
        var d = Decide(Active(), new ContainerProtocol.SetGraceTime("h", TimeSpan.FromSeconds(3)));
        Assert.Equal(3000UL, Assert.IsType<GraceTimeChanged>(Assert.Single(d.Events)).GraceTimeMs);
        Assert.Equal([Note.Info("grace time set to 00:00:03")], d.Notes.ToArray());
    }

    [Fact]
    public void A_live_limit_change_is_checked_against_the_container_then_applied_and_journaled_as_given()
    {
        var s = Active(Spec with { Limits = new Limits(Pids: 10) });
        Assert.Contains("can only be set at create", Refused(s, new ContainerProtocol.SetLimits("h", new Limits(DiskBytes: 1UL << 30))).Message);
        Assert.Equal("bandwidth: container h has no network to limit", Refused(s, new ContainerProtocol.SetLimits("h", new Limits(BandwidthRate: 1 << 20))).Message);

        var change = Decide(s, new ContainerProtocol.SetLimits("h", new Limits(MemoryBytes: 64UL << 20)));
        Assert.Empty(change.Events); // nothing is journaled before the kernel holds it
        Assert.Equal(new Effect.ChangeLimits(new Limits(MemoryBytes: 64UL << 20), new Limits(Pids: 10), null, Spec.Rootfs), change.Effect);
        Assert.True(change.Effect!.Holds);

        // what the container was given, the earlier limits with the change: not what the kernel would read back
        var given = new Limits(MemoryBytes: 64UL << 20, Pids: 10);
        var done = s.Decide(ContainerPhase.Changing, new EffectDone(change.Effect, null), Now);
        Assert.Equal(given, ContainerState.FromRecord(Assert.IsType<LimitsChanged>(Assert.Single(done.Events)).Limits));
        Assert.Equal(new ContainerProtocol.LimitsInForce(given), done.Reply);

        var refused = s.Decide(ContainerPhase.Changing, new EffectFailed(change.Effect, new CgroupLimitException("memory: 64 MiB is below what the container uses")), Now);
        Assert.Empty(refused.Events);
        Assert.Equal(ErrorKind.InvalidArgument, refused.Error!.Kind);
    }

    [Fact]
    public void NetIn_and_NetOut_apply_the_whole_rule_set_and_journal_what_they_add_once_it_holds()
    {
        var s = Active(Spec with { Network = Net, NetIn = [new PortMapping(61001, 80)] });
        var mapping = new PortMapping(61002, 22);
        var netIn = Decide(s, new ContainerProtocol.ApplyNetIn("h", mapping));
        var effect = Assert.IsType<Effect.AddNetIn>(netIn.Effect);
        Assert.Equal([new PortMapping(61001, 80), mapping], effect.NetIn);
        var done = s.Decide(ContainerPhase.Changing, new EffectDone(effect, null), Now);
        Assert.Equal(mapping, ContainerState.FromRecord(Assert.IsType<NetInAdded>(Assert.Single(done.Events)).Mapping));
        Assert.Equal(new ContainerProtocol.NetInInForce(mapping), done.Reply);

        var rule = new NetOutRule(NetProtocol.Tcp, [], [new PortRange(80, 80)]);
        var netOut = Assert.IsType<Effect.AddNetOut>(Decide(s, new ContainerProtocol.NetOut("h", [rule])).Effect);
        Assert.Equal([rule], netOut.NetOut.ToArray());
        Assert.Equal(ErrorKind.FailedPrecondition, Refused(Active(), new ContainerProtocol.ApplyNetIn("h", mapping)).Kind); // no network
        Assert.Equal(ErrorKind.FailedPrecondition, Refused(Active(), new ContainerProtocol.NetOut("h", [rule])).Kind);

        var refused = s.Decide(ContainerPhase.Changing, new EffectFailed(effect, new FirewallException("iptables-restore refused it")), Now);
        Assert.Equal("container h: firewall change failed: iptables-restore refused it", refused.Error!.Message);
        Assert.Empty(refused.Events);
    }

    [Fact]
    public void A_run_gets_an_id_the_containers_environment_first_and_the_default_rlimits_it_names_none_of()
    {
        var s = Active() with { Defaults = new ContainerDefaults("/m", [new RlimitSpec("nofile", 8192, 8192), new RlimitSpec("as", 1, 1)]) };
        var spec = Proc("") with { Env = ["B=2"], Rlimits = [new RlimitSpec("RLIMIT_NOFILE", 10, 10)] };
        var run = Assert.IsType<ContainerProtocol.RunProcess>(Decide(s, new ContainerProtocol.RunProcess("h", spec, true)).Forward);
        Assert.Equal(11, run.Spec.Id.Length);
        Assert.Equal(["A=1", "B=2"], run.Spec.Env.ToArray());
        Assert.Equal([new RlimitSpec("RLIMIT_NOFILE", 10, 10), new RlimitSpec("as", 1, 1)], run.Spec.Rlimits.ToArray());
    }

    /// <summary>The container's .NET knobs are its processes' (a Run gets them), not Garden's file tools': those are the
    /// agent's binary with its own GC settings, and a user's heap limit for their app must not fail a StreamIn.</summary>
    [Fact]
    public void A_file_tool_gets_the_containers_environment_without_its_dotnet_knobs_an_ordinary_run_gets_them_all()
    {
        var s = Active(Spec with { Env = ["A=1", "DOTNET_GCHeapHardLimit=100000", "COMPlus_gcServer=1"] });
        var tool = Assert.IsType<ContainerProtocol.RunProcess>(Decide(s, FileTransfers.StreamIn("h", "/dst", "")).Forward);
        Assert.Equal(["A=1"], tool.Spec.Env.ToArray());
        var run = Assert.IsType<ContainerProtocol.RunProcess>(Decide(s, new ContainerProtocol.RunProcess("h", Proc("") with { Env = ["DOTNET_gcServer=1"] }, true)).Forward);
        Assert.Equal(["A=1", "DOTNET_GCHeapHardLimit=100000", "COMPlus_gcServer=1", "DOTNET_gcServer=1"], run.Spec.Env.ToArray());
    }

    [Fact]
    public void Process_requests_are_handed_on_to_the_process_side_as_they_are()
    {
        // their ids, signals and sizes were checked at the host (Requests.Problem, ValidationTests)
        var s = Active();
        foreach (var command in new object[]
                 {
                     new ContainerProtocol.AttachProcess("h", "p", 0), new ContainerProtocol.SignalProcess("h", "p", 9), new ContainerProtocol.SetProcessTty("h", "p", new TtySize(24, 80)),
                 })
        {
            var d = Decide(s, command);
            Assert.Same(command, d.Forward);
            Assert.Empty(d.Events);
        }
    }

    [Fact]
    public void Stop_and_destroy_journal_the_transition_first_and_their_outcome_after()
    {
        var s = Active(Spec with { Network = Net });
        var stop = Decide(s, new ContainerProtocol.StopContainer("h", Kill: true));
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Stopping), Assert.Single(stop.Events));
        Assert.Equal(new Effect.Stop(Kill: true), stop.Effect);
        var stopping = s.Apply(stop.Events[0]);
        var stopped = Decide(stopping, new EffectDone(stop.Effect!, null));
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Stopped, "stopped"), Assert.Single(stopped.Events));
        Assert.Equal([(EventsProtocol.ContainerEvent.Stopped, "")], stopped.Publish.ToArray());

        var destroy = Decide(s, new HostProtocol.DestroyContainer("h"));
        // a Destroy stops the container; the host releases the rest once it is gone
        Assert.Equal(new Effect.Destroy(Graceful: true, Net, StopOnly: true), destroy.Effect);
        var destroying = s.Apply(destroy.Events[0]);
        var gone = Decide(destroying, new EffectDone(destroy.Effect!, null));
        Assert.Equal(ContainerLifecycle.Destroyed, destroying.Apply(gone.Events[0]).Lifecycle);
        Assert.Equal(new HostProtocol.ContainerDestroyed("h"), gone.Reply);

        var failed = Decide(destroying, new EffectFailed(destroy.Effect!, new IOException("device busy")));
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Broken, "destroy failed: device busy"), Assert.Single(failed.Events));
        Assert.Equal("destroy h failed: device busy", failed.Error!.Message);
        Assert.Equal([(EventsProtocol.ContainerEvent.Broken, "destroy failed: device busy")], failed.Publish.ToArray());
    }

    [Fact]
    public void An_idle_container_is_reaped_like_a_destroy_with_the_reason_but_not_while_it_stops()
    {
        var reap = Decide(Active(), new ContainerProtocol.GraceTimeUp(1));
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Destroying, EventsProtocol.ContainerEvent.Reaped), Assert.Single(reap.Events));
        Assert.IsType<Effect.Destroy>(reap.Effect);
        Assert.False(reap.Await); // nobody asked
        Assert.Equal([(EventsProtocol.ContainerEvent.Reaped, "")], reap.Publish.ToArray());
        Assert.Equal(Decision.None, Decide(In(ContainerLifecycle.Stopping), new ContainerProtocol.GraceTimeUp(1)));
    }

    // ---- a create's outcome ----

    [Fact]
    public void A_finished_create_is_journaled_with_its_mount_and_time_then_answered_and_published()
    {
        var create = new Effect.Create(Spec);
        var d = Decide(Creating(), new EffectDone(create, "/mnt/h/rootfs"));
        var completed = Assert.IsType<CreateCompleted>(Assert.Single(d.Events));
        Assert.Equal(("/mnt/h/rootfs", Now.ToUnixTimeMilliseconds()), (completed.RootfsMount, completed.CreatedUnixMs));
        Assert.Equal(new HostProtocol.ContainerCreated("h"), d.Reply);
        Assert.Equal([(EventsProtocol.ContainerEvent.Created, "")], d.Publish.ToArray());
    }

    [Fact]
    public void A_create_from_an_image_journals_its_config_whose_env_dir_and_user_become_run_defaults_and_survive_a_snapshot()
    {
        var image = new ContainerImage("oci:///l:v1", "sha256:" + new string('d', 64), ["A=image", "I=1"], "/srv", "1000:1000", ["/bin/sh"], ["-c", "echo hi"]);
        var d = Decide(Creating(), new EffectDone(new Effect.Create(Spec), new CreatedRoot("/mnt/h/rootfs", image)));
        var completed = Assert.IsType<CreateCompleted>(Assert.Single(d.Events));
        Assert.Equal("/srv", completed.Image.WorkingDir);
        foreach (var s in new[] { Creating().Apply(completed), ContainerState.Empty("h").Apply(Creating().Apply(completed).ToSnapshot()) })
        {
            // the image's env under the container's (A=1 wins) under the Run's own; its dir and user where the Run names none
            var run = Assert.IsType<ContainerProtocol.RunProcess>(Decide(s, new ContainerProtocol.RunProcess("h", Proc("x") with { Env = ["B=2"] }, true)).Forward);
            Assert.Equal(["A=1", "B=2", "I=1"], run.Spec.Env.OrderBy(e => e, StringComparer.Ordinal).ToArray());
            Assert.Equal(("/srv", "1000:1000"), (run.Spec.Dir, run.Spec.User));
            var own = Assert.IsType<ContainerProtocol.RunProcess>(Decide(s, new ContainerProtocol.RunProcess("h", Proc("y") with { Dir = "/", User = "root" }, true)).Forward);
            Assert.Equal(("/", "root"), (own.Spec.Dir, own.Spec.User));
            var info = s.Info([]);
            Assert.Equal("[\"/bin/sh\"]", info.Properties["garden.image.entrypoint"]);
            Assert.Equal("[\"-c\",\"echo hi\"]", info.Properties["garden.image.cmd"]);
            Assert.False(s.Properties.ContainsKey("garden.image.cmd"));   // shown, not stored among its own
        }
        // a container from a directory has no image defaults
        var plain = Assert.IsType<ContainerProtocol.RunProcess>(Decide(Active(), new ContainerProtocol.RunProcess("h", Proc("z"), true)).Forward);
        Assert.Equal(("", ""), (plain.Spec.Dir, plain.Spec.User));
    }

    [Fact]
    public void A_create_whose_agent_is_starting_is_journaled_made_beside_the_settle_and_answered_by_it()
    {
        var d = Decide(Creating(), new EffectDone(new Effect.Create(Spec), new CreatedRoot("/mnt/h/rootfs", null) { Settling = true }));
        var completed = Assert.IsType<CreateCompleted>(Assert.Single(d.Events));
        Assert.Equal("/mnt/h/rootfs", completed.RootfsMount);
        Assert.Equal(Effect.SettleCreate.Instance, d.Effect);
        Assert.True(d.Await && d.EffectBeside); // started while the record is written; its outcome answers the Create
        Assert.Null(d.Reply);
        Assert.Empty(d.Publish);
        var made = Creating().Apply(completed);
        // the agent answered: nothing more to journal, the Create is answered and published
        var done = Decide(made, new EffectDone(Effect.SettleCreate.Instance, null));
        Assert.Empty(done.Events);
        Assert.Equal(new HostProtocol.ContainerCreated("h"), done.Reply);
        Assert.Equal([(EventsProtocol.ContainerEvent.Created, "")], done.Publish.ToArray());
        // it did not: the container was undone, the handle is released with the error
        var failed = Decide(made, new EffectFailed(Effect.SettleCreate.Instance, new GardenException(ErrorKind.Internal, "the container's agent did not answer within 30s")));
        Assert.Equal(ContainerLifecycle.Destroyed, made.Apply(Assert.Single(failed.Events)).Lifecycle);
        Assert.Contains("agent did not answer", failed.Error!.Message);
    }

    [Fact]
    public void A_failed_create_releases_the_handle_with_the_error_in_the_callers_terms()
    {
        var d = Decide(Creating(), new EffectFailed(new Effect.Create(Spec), new RootfsException("rootfs /r does not exist")));
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Destroyed), Assert.Single(d.Events));
        Assert.Equal(ErrorKind.InvalidArgument, d.Error!.Kind);
        Assert.Equal("rootfs: rootfs /r does not exist", d.Error.Message);
    }

    [Fact]
    public void A_create_whose_undo_failed_too_stays_broken_so_a_destroy_can_finish_it()
    {
        var failure = new CreateUndoFailedException(new IOException("runc: exec format error"), new IOException("umount: busy"));
        var d = Decide(Creating(), new EffectFailed(new Effect.Create(Spec), failure));
        var broken = Creating().Apply(Assert.Single(d.Events));
        Assert.Equal(ContainerLifecycle.Broken, broken.Lifecycle);
        Assert.Contains("umount: busy", broken.Events.Last());
        Assert.EndsWith("destroy it", broken.Events.Last());
        Assert.Equal("container h: create failed: runc: exec format error", d.Error!.Message); // the caller hears what failed
        Assert.IsType<Effect.Destroy>(Decide(broken, new HostProtocol.DestroyContainer("h")).Effect);
    }

    // ---- recovery ----

    [Fact]
    public void Recovery_plan_follows_the_journal()
    {
        // registered by the host, no CreateStarted: its kernel work may have begun beside that write, so it is undone
        var empty = ContainerState.Empty("h");
        Assert.Equal(RecoveryPlan.Undo, empty.PlanRecovery());
        Assert.Equal(RecoveryPlan.Undo, empty.Apply(ContainerState.Changed(ContainerLifecycle.Destroying)).PlanRecovery());
        Assert.Equal(RecoveryPlan.Release, empty.Apply(ContainerState.Changed(ContainerLifecycle.Destroyed)).PlanRecovery());
        var creating = Creating();
        Assert.Equal(RecoveryPlan.Undo, creating.PlanRecovery());
        var active = Active();
        Assert.Equal(RecoveryPlan.Reconcile, active.PlanRecovery());
        Assert.Equal(RecoveryPlan.Reconcile, active.Apply(ContainerState.Changed(ContainerLifecycle.Stopped, "stopped")).PlanRecovery());
        Assert.Equal(RecoveryPlan.Undo, active.Apply(ContainerState.Changed(ContainerLifecycle.Destroying)).PlanRecovery());
        Assert.Equal(RecoveryPlan.Release, active.Apply(ContainerState.Changed(ContainerLifecycle.Destroyed)).PlanRecovery());
    }

    [Fact]
    public void Recovery_undoes_a_half_create_without_asking_its_agent_and_reconciles_a_live_one()
    {
        var undo = Creating(Spec with { Network = Net }).Recover(null);
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Destroying), Assert.Single(undo.Events));
        Assert.Equal(new Effect.Destroy(Graceful: false, Net), undo.Effect);

        var reconcile = Assert.IsType<Effect.Reconcile>((Active() with { Defaults = new ContainerDefaults("/default", []) }).Recover(null).Effect);
        Assert.Equal("/m", reconcile.RootfsMount); // as journaled, not where this build would mount it
        Assert.True(reconcile.Watch);
        Assert.False(Assert.IsType<Effect.Reconcile>(In(ContainerLifecycle.Broken, "x").Recover(null).Effect).Watch);
        // registered, but no CreateStarted in its journal: whatever of it was made goes, by its name (the host releases
        // its network after)
        var unstarted = ContainerState.Empty("h").Recover(null);
        Assert.Equal(ContainerState.Changed(ContainerLifecycle.Destroying), Assert.Single(unstarted.Events));
        Assert.Equal(new Effect.Destroy(Graceful: false, null), unstarted.Effect);
        var release = ContainerState.Empty("h").Apply(ContainerState.Changed(ContainerLifecycle.Destroyed)).Recover(null);
        Assert.Empty(release.Events);
        Assert.Null(release.Effect);
    }

    [Fact]
    public void A_quarantined_container_is_broken_with_the_reason_journaled_once()
    {
        var first = Active().Recover("journal record 3 cannot be applied");
        var broken = Active().Apply(Assert.Single(first.Events));
        Assert.Equal("journal record 3 cannot be applied; destroy it", broken.Events.Last());
        Assert.Equal([(EventsProtocol.ContainerEvent.Broken, "journal record 3 cannot be applied; destroy it")], first.Publish.ToArray());
        Assert.Null(first.Effect); // nothing of it reaches the kernel
        var again = broken.Recover("journal record 3 cannot be applied");
        Assert.Empty(again.Events);
        Assert.Single(again.Publish);
    }

    [Theory]
    [InlineData(true, true, true, true, true, null)]
    [InlineData(false, false, false, false, false, "runc state vanished")]
    [InlineData(true, false, true, false, true, "container init gone")]
    [InlineData(true, true, false, true, true, "rootfs no longer mounted")]
    [InlineData(true, true, true, true, false, "cgroup gone")]
    [InlineData(true, true, true, false, true, "agent does not answer")]
    public void Findings_name_the_first_thing_missing(bool runtime, bool init, bool rootfs, bool agent, bool cgroup, string? expected)
    {
        var problem = new KernelFindings(runtime, init, rootfs, agent, cgroup).Problem;
        if (expected is null) Assert.Null(problem);
        else Assert.Contains(expected, problem);
    }

    [Fact]
    public void What_a_reconcile_finds_is_journaled_broken_once_and_a_stop_it_interrupted_is_finished()
    {
        var reconcile = new Effect.Reconcile("/m", null, [], [], true);
        var lost = new KernelFindings(true, true, true, true, CgroupPresent: false);
        var d = Active().Decide(ContainerPhase.Recovering, new EffectDone(reconcile, lost), Now);
        Assert.Equal([typeof(Reconciled), typeof(LifecycleChanged)], d.Events.Select(e => e.GetType()));
        Assert.Equal([(EventsProtocol.ContainerEvent.Broken, "cgroup gone")], d.Publish.ToArray());
        var alreadyBroken = In(ContainerLifecycle.Broken, "cgroup gone").Decide(ContainerPhase.Recovering, new EffectDone(reconcile, lost), Now);
        Assert.IsType<Reconciled>(Assert.Single(alreadyBroken.Events));

        var whole = new KernelFindings(true, true, true, true, true);
        var midStop = In(ContainerLifecycle.Stopping).Decide(ContainerPhase.Recovering, new EffectDone(reconcile, whole), Now);
        Assert.Equal([(EventsProtocol.ContainerEvent.Reattached, "")], midStop.Publish.ToArray());
        Assert.Equal(new Effect.Stop(Kill: true), midStop.Effect);

        // a reconcile that could not read the kernel finds nothing
        var unread = Active().Decide(ContainerPhase.Recovering, new EffectFailed(reconcile, new IOException("runc: no such file")), Now);
        Assert.Contains(unread.Publish, p => p.Detail.Contains("runc state vanished"));
    }

    // ---- OOM ----

    [Fact]
    public void An_oom_report_is_one_record_with_the_count_and_none_once_the_container_goes()
    {
        var report = new Effect.CountOomKills(Kills: 3, AtUnixMs: 42);
        var d = Decide(Active(), new EffectDone(report, 7UL));
        var record = Assert.IsType<OutOfMemory>(Assert.Single(d.Events));
        Assert.Equal((42L, 7UL, 3UL), (record.AtUnixMs, record.OomKills, record.Kills));
        Assert.Equal([(EventsProtocol.ContainerEvent.OutOfMemory, "7 kills so far")], d.Publish.ToArray());
        Assert.Equal("3 kills so far", Decide(Active(), new EffectFailed(report, new IOException("gone"))).Publish.Single().Detail);
        Assert.Equal(Decision.None, Decide(In(ContainerLifecycle.Destroying), new EffectDone(report, 7UL)));
    }

    [Fact]
    public void Oom_kills_are_reported_at_once_then_at_most_once_per_interval()
    {
        var t0 = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var throttle = new OomThrottle(TimeSpan.FromSeconds(5));
        Assert.Equal(((OomThrottle.Report?)new OomThrottle.Report(1, 100), (TimeSpan?)null), throttle.Killed(t0, 100));
        Assert.Equal((null, TimeSpan.FromSeconds(4)), throttle.Killed(t0.AddSeconds(1), 200));
        Assert.Equal((null, null), throttle.Killed(t0.AddSeconds(2), 300)); // a report is due already
        Assert.Equal(new OomThrottle.Report(2, 300), throttle.Due(t0.AddSeconds(5)));
        Assert.Null(throttle.Due(t0.AddSeconds(10))); // nothing since
        Assert.Equal(new OomThrottle.Report(1, 400), throttle.Killed(t0.AddSeconds(11), 400).Now);
    }

    // ---- state ----

    [Fact]
    public void A_snapshot_restores_the_same_state()
    {
        var s = ContainerState.Empty("h")
            .Apply(new CreateStarted { Spec = ContainerState.ToRecord(Spec with { Properties = ImmutableDictionary<string, string>.Empty.Add("a", "1") }) })
            .Apply(new CreateCompleted { RootfsMount = "/m" })
            .Apply(new PropertySet { Key = "b", Value = "2" })
            .Apply(ContainerState.Changed(ContainerLifecycle.Stopped, "stopped"));
        var again = ContainerState.Empty("h").Apply(s.ToSnapshot());
        Assert.Equal(s.Lifecycle, again.Lifecycle);
        Assert.Equal(s.Rootfs, again.Rootfs);
        Assert.Equal(s.Properties, again.Properties);
        Assert.Equal(s.Events, again.Events);
        Assert.Equal(s.Spec!.Handle, again.Spec!.Handle);
    }
}
