using System.Collections.Immutable;
using Garden.Actors.Container;
using Garden.Actors.Kernel;
using Garden.Protocol.Journal;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The pure decisions behind the ContainerActor, without an ActorSystem.</summary>
public sealed class ContainerStateTests
{
    private static readonly ContainerSpec Spec = new("h", "/r", [], ImmutableDictionary<string, string>.Empty, false);

    [Theory]
    [InlineData(true, true, true, true, true, null)]
    [InlineData(false, false, false, false, false, "runc state vanished")]
    [InlineData(true, false, true, false, true, "container init gone")]
    [InlineData(true, true, false, true, true, "rootfs no longer mounted")]
    [InlineData(true, true, true, true, false, "cgroup gone")]
    [InlineData(true, true, true, false, true, "agent does not answer")]
    public void Diagnose_names_the_first_thing_missing(bool runtime, bool init, bool rootfs, bool agent, bool cgroup, string? expected)
    {
        var problem = new KernelFindings(runtime, init, rootfs, agent, cgroup).Problem;
        if (expected is null) Assert.Null(problem);
        else Assert.Contains(expected, problem);
    }

    [Fact]
    public void Recovery_plan_follows_the_journal()
    {
        var empty = ContainerState.Empty("h");
        Assert.Equal(RecoveryPlan.Release, empty.PlanRecovery());
        var creating = empty.Apply(new CreateStarted { Spec = ContainerState.ToRecord(Spec) });
        Assert.Equal(RecoveryPlan.Undo, creating.PlanRecovery());
        var active = creating.Apply(new CreateCompleted { RootfsMount = "/m" });
        Assert.Equal(RecoveryPlan.Reconcile, active.PlanRecovery());
        Assert.Equal(RecoveryPlan.Reconcile, active.Apply(ContainerState.Changed(ContainerLifecycle.Stopped, "stopped")).PlanRecovery());
        Assert.Equal(RecoveryPlan.Undo, active.Apply(ContainerState.Changed(ContainerLifecycle.Destroying)).PlanRecovery());
        Assert.Equal(RecoveryPlan.Release, active.Apply(ContainerState.Changed(ContainerLifecycle.Destroyed)).PlanRecovery());
    }

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
