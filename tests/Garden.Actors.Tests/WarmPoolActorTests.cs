using System.Collections.Immutable;
using Garden.Actors.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The host with a warm pool of one, on fakes: it makes an entry ahead, a Create takes it (renamed, nothing of
/// it made again), the pool is made again, a restart keeps (once checked) the entry it left untaken and the container taken.</summary>
public sealed class WarmPoolActorTests : ActorTest
{
    /// <summary>The host starts with the test, and each test begins once its first entry is ready (journaled).</summary>
    public WarmPoolActorTests() : base("warmpool", "max-containers = 5\nwarm-pool.size = 1\nwarm-pool.refill-delay = 0s\nwarm-pool.quiet-period = 0s", startHost: false) =>
        EventFilter.Info(contains: "warm pool: entry ready").ExpectOne(TimeSpan.FromSeconds(10), () => StartHost());

    private static ContainerSpec Spec(string handle) => new(handle, "", [], ImmutableDictionary<string, string>.Empty, false);

    private IReadOnlyList<string> Entries() => [.. Runtime.Containers.Where(HostState.IsPoolName).Order()];

    private IReadOnlyList<string> List() => Ask<HostProtocol.ContainerList>(new HostProtocol.ListContainers(ImmutableDictionary<string, string>.Empty)).Handles;

    [Fact]
    public void A_create_takes_the_entry_made_ahead_and_the_pool_is_made_again()
    {
        Assert.Equal(["_pool-1"], Entries());
        Assert.Empty(List()); // the host's own, not a user's

        Assert.Equal("a", Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("a"))).Handle);
        // nothing made again for it: renamed, and its runtime name is the entry's
        Assert.DoesNotContain(new Call.Ran("a"), Calls.All);
        Assert.Contains(new Call.HostnameSet(4242, "a"), Calls.All);
        Assert.Contains("_pool-1", Runtime.Containers);
        Assert.Equal(["a"], List());
        AwaitAssert(() => Assert.Equal(["_pool-1", "_pool-3"], Entries()), TimeSpan.FromSeconds(5)); // _pool-1 is a's now

        // kill -9 and a restart: the untaken entry is checked and kept (not made again), a keeps its entry's kernel objects
        EventFilter.Info(contains: "warm pool: entry kept across the restart").ExpectOne(TimeSpan.FromSeconds(10), () => Restart());
        Assert.Equal(["a"], List());
        Assert.Contains("_pool-1", Runtime.Containers);
        Assert.Equal(["_pool-1", "_pool-3"], Entries());
        Assert.Equal(1, Calls.All.Count(c => c == new Call.Ran("_pool-3")));

        // the next Create takes the kept entry, never one handed out before (a's), and nothing is made for it
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("b")));
        Assert.Contains(new Call.HostnameSet(4242, "b"), Calls.All);
        Assert.DoesNotContain(new Call.Ran("b"), Calls.All);
        Assert.Equal(1, Calls.All.Count(c => c == new Call.Ran("_pool-3")));
        Assert.Equal(["a", "b"], List().Order());
        AwaitAssert(() => Assert.Equal(3, Entries().Count), TimeSpan.FromSeconds(5)); // a's, b's, and the refill

        // destroying a removes its entry's runtime container
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("a"));
        AwaitAssert(() => Assert.DoesNotContain("_pool-1", Runtime.Containers), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_restart_releases_a_kept_entry_that_died_while_gardend_was_down_and_makes_another()
    {
        Assert.Equal(["_pool-1"], Entries());
        EventFilter.Info(contains: "warm pool: entry ready").ExpectOne(TimeSpan.FromSeconds(10), () =>
            EventFilter.Warning(contains: "warm pool: entry not kept across the restart").ExpectOne(TimeSpan.FromSeconds(10), () =>
                Restart(whileDown: () => Runtime.StopInit("_pool-1"))));
        AwaitAssert(() => Assert.DoesNotContain("_pool-1", Runtime.Containers), TimeSpan.FromSeconds(5));
        var made = Assert.Single(Entries());
        Assert.NotEqual("_pool-1", made);
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("a")));
        Assert.Contains(new Call.HostnameSet(4242, "a"), Calls.All);
        Assert.DoesNotContain(new Call.Ran("a"), Calls.All);
    }

    [Fact]
    public void An_entry_that_died_in_the_pool_is_made_anew_for_the_create_that_takes_it()
    {
        Assert.Equal(["_pool-1"], Entries());
        Runtime.StopInit("_pool-1"); // its agent died while pooled
        Assert.Equal("a", Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("a"))).Handle);
        Assert.Contains(new Call.Deleted("_pool-1"), Calls.All);
        Assert.Equal(2, Calls.All.Count(c => c == new Call.Ran("_pool-1"))); // made for the pool, and made anew
        Assert.Contains(new Call.HostnameSet(4242, "a"), Calls.All);
        Assert.Contains("_pool-1", Runtime.Containers);
        Assert.Equal(["a"], List());
    }

    [Fact]
    public void A_create_the_pool_cannot_serve_is_made_the_normal_way_and_leaves_the_entry()
    {
        Assert.Equal(["_pool-1"], Entries());
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec("e") with { Privileged = true }));
        Assert.Contains(new Call.Ran("e"), Calls.All);
        Assert.DoesNotContain(Calls.All, c => c is Call.HostnameSet);
        Assert.Equal(["_pool-1"], Entries());
    }
}
