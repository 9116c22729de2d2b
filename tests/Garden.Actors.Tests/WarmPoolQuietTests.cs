using System.Collections.Immutable;
using Garden.Actors.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The refill's low priority on fakes with virtual time: after a user's request the host starts no pool entry
/// until garden.warm-pool.quiet-period has passed without another, and an entry being made waits at the
/// <see cref="IdleGate"/> while the gate is closed.</summary>
public sealed class WarmPoolQuietTests : ActorTest
{
    public WarmPoolQuietTests() : base("warmquiet", "max-containers = 5\nwarm-pool.size = 1\nwarm-pool.refill-delay = 0s\nwarm-pool.quiet-period = 1s", startHost: false) =>
        EventFilter.Info(contains: "warm pool: entry ready").ExpectOne(TimeSpan.FromSeconds(10), () => StartHost());

    private static ContainerSpec Spec(string handle) => new(handle, "", [], ImmutableDictionary<string, string>.Empty, false);

    private IReadOnlyList<string> Entries() => [.. Runtime.Containers.Where(HostState.IsPoolName).Order()];

    [Fact]
    public void No_entry_is_started_until_the_quiet_period_after_a_users_request_passed()
    {
        Assert.Equal(["_pool-1"], Entries());
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("a")));
        Assert.Contains(new Call.HostnameSet(4242, "a"), Calls.All); // it took the entry
        // the Create ended, nothing is in flight, but a second passed in no clock: no entry is started
        Thread.Sleep(300);
        Assert.Equal(["_pool-1"], Entries()); // _pool-1 is a's now
        Assert.DoesNotContain(Calls.All, c => c is Call.Ran r && r.Handle != "_pool-1");

        EventFilter.Info(contains: "warm pool: entry ready").ExpectOne(TimeSpan.FromSeconds(10), () => Clock.Advance(TimeSpan.FromSeconds(1)));
        Assert.Equal(2, Entries().Count);
    }

    [Fact]
    public async Task The_gate_holds_a_step_while_closed_and_lets_it_go_when_opened_or_after_its_longest_wait()
    {
        var gate = new IdleGate();
        Assert.False(await gate.WaitAsync()); // open: no wait
        gate.Close();
        Assert.False(gate.IsOpen);
        var waiting = gate.WaitAsync();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        gate.Open();
        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(1)));
        gate.Close();
        var started = DateTime.UtcNow;
        Assert.True(await gate.WaitAsync()); // never longer than its MaxWait: a busy host still refills
        Assert.True(DateTime.UtcNow - started >= IdleGate.MaxWait - TimeSpan.FromMilliseconds(50));
    }
}
