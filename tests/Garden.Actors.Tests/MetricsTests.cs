using System.Collections.Immutable;
using Garden.Actors.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>What the actors tell their metrics (<see cref="IGardenMetrics"/>), where it happens: no listener, a recorder.</summary>
public sealed class MetricsTests() : ActorTest("metrics")
{
    private RecordingMetrics Metrics => Fakes.Metrics;

    private static HostProtocol.CreateContainer Create(string handle) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false, new Limits(MemoryBytes: 32UL << 20)));

    [Fact]
    public void Containers_by_state_journal_writes_recoveries_and_oom_kills_are_told()
    {
        Assert.Equal(1, Metrics.Recoveries); // the start's recovery (an empty journal)
        var hostWrites = Metrics.Journaled("host");
        Assert.True(hostWrites >= 1, "the daemon's start is journaled");

        Ask<HostProtocol.ContainerCreated>(Create("m1"));
        Ask<HostProtocol.ContainerCreated>(Create("m2"));
        AwaitAssert(() => Assert.Equal(2, Metrics.InState(ContainerLifecycle.Active)));
        Assert.Equal(0, Metrics.InState(ContainerLifecycle.Creating));
        Assert.True(Metrics.Journaled("host") > hostWrites, "each registration is a host write");
        Assert.True(Metrics.Journaled("container") >= 2, "each container journals its creation");

        Assert.True(Oom.Kill("m1"));
        Assert.True(Oom.Kill("m1"));
        AwaitAssert(() => Assert.Equal(["m1", "m1"], Metrics.OomKilled())); // each kill, before the event's throttle

        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("m2"));
        AwaitAssert(() => Assert.Equal(1, Metrics.InState(ContainerLifecycle.Active)));

        Restart();
        Assert.Equal(2, Metrics.Recoveries);
        AwaitAssert(() => Assert.Equal(1, Metrics.InState(ContainerLifecycle.Active))); // the recovered one told again
    }
}
