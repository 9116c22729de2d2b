using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Recovery proven by a second incarnation of the HostActor on the same journal (the in-memory journal of
/// this ActorSystem), with the fakes standing for a kernel that kept running.</summary>
public sealed class RecoveryTests() : ActorTest("recovery", "snapshot-every = 3\ndestroy-containers-on-start = off")
{
    private void Create(string handle, params (string, string)[] props) => Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(
        new ContainerSpec(handle, "", ["E=1"], props.ToImmutableDictionary(p => p.Item1, p => p.Item2), false)));

    [Fact]
    public void A_restarted_host_reattaches_with_the_same_handle_properties_and_state()
    {
        Create("keep", ("a", "1"));
        Ask<HostProtocol.Done>(new ContainerProtocol.SetProperty("keep", "b", "2"));
        Ask<HostProtocol.Done>(new ContainerProtocol.SetProperty("keep", "c", "3"));
        Ask<HostProtocol.Done>(new ContainerProtocol.RemoveProperty("keep", "a"));
        Create("halt");
        Ask<HostProtocol.Done>(new ContainerProtocol.StopContainer("halt", Kill: true));
        var before = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("keep"));

        Restart();

        var after = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("keep"));
        Assert.Equal(before.Handle, after.Handle);
        Assert.Equal(ContainerLifecycle.Active, after.State);
        Assert.Equal(before.Properties, after.Properties);
        Assert.Equal(before.Events, after.Events);
        Assert.Equal(ContainerLifecycle.Stopped, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("halt")).State);
        Assert.Equal(["halt", "keep"], List());
        Assert.Contains(new Call.Adopted("keep"), Calls.All);
        Assert.Equal(2, Runtime.Containers.Count);
        Assert.Equal(1, Calls.Count(new Call.Ran("keep"))); // reattached, not recreated
    }

    [Fact]
    public void A_container_whose_runc_state_vanished_is_reported_broken_and_can_be_destroyed()
    {
        Create("vanish");
        Runtime.Forget("vanish");
        Restart();
        var info = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("vanish"));
        Assert.Equal(ContainerLifecycle.Broken, info.State);
        Assert.Contains(info.Events, e => e.Contains("runc state vanished"));
        var run = Error(new ContainerProtocol.RunProcess("vanish", new ProcessSpec("", "/bin/true", [], [], "", "", [], null), false));
        Assert.Equal(ErrorKind.FailedPrecondition, run.Kind);
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("vanish"));
        AwaitAssert(() => Assert.Equal(0, Rootfs.MountedCount)); // released right after the answer
        AwaitAssert(() => Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("vanish")).Kind));
    }

    [Fact]
    public void A_release_cut_short_by_a_crash_is_finished_by_the_next_daemon_and_its_pools_wait_for_it()
    {
        Create("cut");
        Firewall.RemoveGate = new TaskCompletionSource().Task; // the daemon dies while the rules are being removed
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("cut"));
        Assert.Empty(Runtime.Containers);
        Assert.NotNull(Firewall.Of("cut"));
        Assert.True(Directory.Exists(Path.Combine(StateDir, "depot", "cut"))); // the depot goes last

        Restart(whileDown: () => Firewall.RemoveGate = null);

        Assert.Empty(List());
        AwaitAssert(() => Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", "cut"))));
        Assert.Null(Firewall.Of("cut"));
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Empty(Network.Handles);
        // finished and journaled: its handle and its address are free again, and stay free after one more restart
        Restart();
        Create("cut");
        Assert.Equal(2, Calls.Count(new Call.NetworkSetUp("cut", Garden.Linux.Network.Ipv4.Parse("10.254.0.2", "t"))));
    }

    [Fact]
    public void A_container_whose_agent_died_is_reported_broken()
    {
        Create("orphan");
        Runtime.StopInit("orphan");
        Restart();
        var info = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("orphan"));
        Assert.Equal(ContainerLifecycle.Broken, info.State);
        Assert.Contains(info.Events, e => e.Contains("container init gone"));
        Restart(); // broken stays broken, without a second note
        Assert.Single(Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("orphan")).Events, e => e.Contains("container init gone"));
    }

    [Fact]
    public void A_create_interrupted_by_a_crash_is_undone_by_the_next_daemon()
    {
        var gate = new TaskCompletionSource();
        Runtime.RunGate = gate.Task;
        Host.Tell(new HostProtocol.CreateContainer(new ContainerSpec("half", "", [], ImmutableDictionary<string, string>.Empty, false)));
        AwaitCondition(() => Calls.Count(new Call.Ran("half")) == 1);
        // The daemon dies while runc is starting the container: the container comes up with nobody to record it.
        Restart(waitUntilServing: false, whileDown: () =>
        {
            Runtime.RunGate = null;
            gate.SetResult();
            AwaitCondition(() => Runtime.Containers.Contains("half"));
        });
        AwaitAssert(() => Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance), TimeSpan.FromSeconds(5));
        AwaitAssert(() =>
        {
            Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("half")).Kind);
            Assert.Equal(0, Rootfs.MountedCount);
            Assert.Empty(Runtime.Containers);
        }, TimeSpan.FromSeconds(5));
        Create("half"); // the handle is free again
    }

    [Fact]
    public void A_create_is_journaled_made_while_its_agent_starts_and_answered_once_the_agent_is()
    {
        var agentUp = new TaskCompletionSource();
        Agent.PingGate = agentUp.Task; // the agent boots slowly
        Host.Tell(new HostProtocol.CreateContainer(new ContainerSpec("booting", "", [], ImmutableDictionary<string, string>.Empty, false)), TestActor);
        AwaitCondition(() => Calls.Count(new Call.Ran("booting")) == 1);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // no answer before the agent's
        // The daemon dies now: CreateCompleted was journaled while the agent started, so the next daemon finds the
        // container made (and running: its agent answers by then), where it would have undone a Create still in flight.
        Restart(waitUntilServing: false, whileDown: () => agentUp.SetResult());
        AwaitAssert(() => Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance), TimeSpan.FromSeconds(5));
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("booting")).State);
        Assert.Contains("booting", Runtime.Containers);
    }

    [Fact]
    public void A_create_whose_agent_does_not_start_answers_the_error_and_leaves_nothing()
    {
        Agent.Reachable = false;
        var e = Error(new HostProtocol.CreateContainer(new ContainerSpec("mute", "", [], ImmutableDictionary<string, string>.Empty, false)));
        Assert.Contains("agent did not answer", e.Message);
        Agent.Reachable = true;
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("mute")).Kind);
        Assert.Empty(Runtime.Containers);
        Assert.Equal(0, Rootfs.MountedCount);
        Create("mute"); // the handle is free again
        Restart(); // and stays made across a restart
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("mute")).State);
    }

    [Fact]
    public void The_gateway_gets_Unavailable_until_every_container_is_reconciled()
    {
        Create("slow");
        var gate = new TaskCompletionSource();
        Agent.PingGate = gate.Task;
        Restart(waitUntilServing: false);
        var e = Error(HostProtocol.Ping.Instance);
        Assert.Equal(ErrorKind.Unavailable, e.Kind);
        Assert.Contains("recovering", e.Message);
        Assert.Equal(ErrorKind.Unavailable, Error(new ContainerProtocol.GetInfo("slow")).Kind);
        gate.SetResult();
        AwaitAssert(() => Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance), TimeSpan.FromSeconds(5));
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("slow")).State);
    }

    [Fact]
    public void The_containers_actors_start_while_leftovers_are_pruned_and_touch_the_kernel_only_after_it()
    {
        Create("early");
        Create("later");
        var gate = new TaskCompletionSource();
        Firewall.PruneGate = gate.Task; // a slow iptables-save
        Restart(waitUntilServing: false);
        // each container's actor is up (reading its journal) while the prune still runs ...
        AwaitAssert(() =>
        {
            Sys.ActorSelection("/user/host/*").Tell(new Identify("child"), TestActor);
            var found = new[] { ExpectMsg<ActorIdentity>(TimeSpan.FromMilliseconds(500)), ExpectMsg<ActorIdentity>(TimeSpan.FromMilliseconds(500)) };
            Assert.All(found, f => Assert.NotNull(f.Subject));
        });
        // ... and nothing of the kernel is asked before it ended: no reconcile (which adopts runc's container first)
        Thread.Sleep(300);
        Assert.Equal(0, Calls.Count(new Call.Adopted("early")) + Calls.Count(new Call.Adopted("later")));
        gate.SetResult();
        AwaitServing();
        Assert.Equal(1, Calls.Count(new Call.Adopted("early")));
        Assert.Equal(1, Calls.Count(new Call.Adopted("later")));
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("early")).State);
    }

    [Fact]
    public void Destroy_containers_on_start_leaves_a_clean_host()
    {
        Create("x1");
        Create("x2");
        Restart("destroy-containers-on-start = on", waitUntilServing: false);
        AwaitAssert(() => Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance), TimeSpan.FromSeconds(5));
        Assert.Empty(List());
        Assert.Empty(Runtime.Containers);
        Assert.Equal(0, Rootfs.MountedCount);
    }

    [Fact]
    public void A_destroyed_handle_stays_gone_after_a_restart_and_can_be_reused()
    {
        Create("reuse", ("gen", "1"));
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("reuse"));
        Restart();
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("reuse")).Kind);
        Create("reuse", ("gen", "2"));
        Restart();
        Assert.Equal("2", Ask<ContainerProtocol.PropertyValue>(new ContainerProtocol.GetProperty("reuse", "gen")).Value);
    }
}
