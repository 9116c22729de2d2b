using System.Collections.Immutable;
using Garden.Actors.Host;
using Garden.Linux.Network;
using Garden.Protocol.Journal;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The warm pool's decisions in <see cref="HostState"/>: what an entry takes of the pools, when the pool is
/// refilled, which Creates take an entry and what they get of it, and that an entry is handed out once.</summary>
public sealed class WarmPoolStateTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("warmpool");
    private readonly FakeHostResources _host = new();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private GardenSettings Settings(int pool = 2, int max = 3, string extra = "") => GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
        $$"""
        garden {
          state-dir = "{{_dir}}/state", default-rootfs = "/base", max-containers = {{max}}
          network { pool = "10.9.0.0/28", port-pool { start = 40000, size = 2 } }
          warm-pool { size = {{pool}} }
          {{extra}}
        }
        """));

    private static ContainerSpec Spec(string handle) => new(handle, "", [], ImmutableDictionary<string, string>.Empty, false);

    /// <summary>The state with an entry planned and journaled; made (ready) unless told otherwise.</summary>
    private static (HostState State, string Name) WithEntry(HostState state, GardenSettings settings, bool ready = true)
    {
        var added = state.PlanPoolEntry(settings) ?? throw new InvalidOperationException("no entry planned");
        state = state.Apply(added);
        if (ready) state = state.Apply(new PoolEntryReady { Name = added.Name });
        return (state, added.Name);
    }

    [Fact]
    public void An_entry_takes_a_subnet_an_id_range_and_a_name_that_is_never_a_handle_nor_used_again()
    {
        var settings = Settings(extra: "user-namespace { mapping = per-container }");
        var (state, first) = WithEntry(HostState.Empty, settings);
        var (state2, second) = WithEntry(state, settings);
        Assert.Equal("_pool-1", first);
        Assert.Equal("_pool-2", second);
        Assert.True(HostState.IsPoolName(first));
        Assert.NotNull(Names.Problem(first)); // no Create can name it
        Assert.Equal("10.9.0.2", state2.Networks[first].Address.ToString());
        Assert.Equal("10.9.0.6", state2.Networks[second].Address.ToString());
        Assert.False(state2.IdBlocks[first].Overlaps(state2.IdBlocks[second]));
        Assert.Empty(state2.Containers); // the host's own, not a user's
        // a released entry's name and number are not handed out again
        state2 = state2.Apply(state2.ReleasePoolEntry(first)!);
        var (_, third) = WithEntry(state2.Apply(new ReleaseFinished { Handle = first }), settings);
        Assert.Equal("_pool-3", third);
    }

    [Fact]
    public void The_pool_fills_to_its_size_and_never_takes_the_last_free_place()
    {
        var settings = Settings(pool: 5, max: 3);
        var (state, _) = WithEntry(HostState.Empty, settings);
        (state, _) = WithEntry(state, settings);
        Assert.Null(state.PlanPoolEntry(settings)); // 2 entries + 1 free place = max-containers 3
        Assert.Null(HostState.Empty.PlanPoolEntry(Settings(pool: 0)));
        var (full, _) = WithEntry(HostState.Empty, Settings(pool: 1, max: 10));
        Assert.Null(full.PlanPoolEntry(Settings(pool: 1, max: 10)));
    }

    [Fact]
    public void A_create_takes_the_oldest_ready_entry_with_its_network_and_ids_in_one_record()
    {
        var settings = Settings(extra: "user-namespace { mapping = per-container }");
        var (state, first) = WithEntry(HostState.Empty, settings);
        var (state2, _) = WithEntry(state, settings);
        var network = state2.Networks[first];
        var ids = state2.IdBlocks[first];
        var a = state2.Admit(Spec("a"), settings, _host);
        Assert.Equal(first, a.PoolEntry);
        Assert.Equal(first, a.Registered.RuntimeName);
        Assert.Equal(network, a.Spec.Network);
        Assert.Equal(ids.HostStart, a.Spec.UserNamespace!.RootUid);
        var after = state2.Apply(a.Registered);
        Assert.False(after.Pool.ContainsKey(first));
        Assert.False(after.Networks.ContainsKey(first));
        Assert.Equal(network, after.Networks["a"]);
        Assert.Equal(ids, after.IdBlocks["a"]);
        Assert.Equal(first, after.RuntimeOf("a"));
        Assert.Equal(a.Registered.Incarnation, after.Containers["a"]);
    }

    [Fact]
    public void An_entry_is_handed_out_once_and_one_being_made_is_not_handed_out()
    {
        var settings = Settings();
        var (state, first) = WithEntry(HostState.Empty, settings);
        var (state2, making) = WithEntry(state, settings, ready: false);
        var a = state2.Admit(Spec("a"), settings, _host);
        Assert.Equal(first, a.PoolEntry);
        var after = state2.Apply(a.Registered);
        // the next Create sees the entry taken: the one being made is not ready, so it is made the normal way
        var b = after.Admit(Spec("b"), settings, _host);
        Assert.Null(b.PoolEntry);
        Assert.NotEqual(after.Networks[making].Subnet, b.Spec.Network!.Subnet);
        Assert.NotEqual(after.Networks["a"].Subnet, b.Spec.Network!.Subnet);
        Assert.Equal("b", after.RuntimeOf("b"));
    }

    [Fact]
    public void Only_creates_of_the_default_shape_are_served_by_the_pool()
    {
        var settings = Settings();
        var spec = Spec("a") with { Rootfs = "/base", Limits = Limits.None };
        Assert.Null(HostState.PoolProblem(spec, settings));
        Assert.Null(HostState.PoolProblem(spec with { Limits = new Limits(MemoryBytes: 1 << 26, Pids: 10) }, settings));
        Assert.Null(HostState.PoolProblem(spec with { NetIn = [new PortMapping(0, 80)] }, settings));
        Assert.NotNull(HostState.PoolProblem(spec with { Rootfs = "/other" }, settings));
        Assert.NotNull(HostState.PoolProblem(spec with { Privileged = true }, settings));
        Assert.Null(HostState.PoolProblem(spec with { Env = ["A=1"] }, settings)); // env is the Run's: applied per Create
        Assert.NotNull(HostState.PoolProblem(spec with { NetworkRequest = "10.1.0.0/24" }, settings));
        Assert.NotNull(HostState.PoolProblem(spec with { BindMounts = [new BindMount("/etc", "/mnt", true)] }, settings));
        Assert.NotNull(HostState.PoolProblem(spec with { Limits = new Limits(DiskBytes: 1 << 26) }, settings));
        Assert.NotNull(HostState.PoolProblem(spec with { Limits = new Limits(BandwidthRate: 1 << 20) }, settings));

        var (state, _) = WithEntry(HostState.Empty, settings);
        Assert.Null(state.Admit(Spec("p") with { Privileged = true }, settings, _host).PoolEntry);
        var e = state.Admit(Spec("e") with { Env = ["A=1"] }, settings, _host);
        Assert.NotNull(e.PoolEntry);
        Assert.Equal(["A=1"], e.Spec.Env.ToArray()); // the container's env, which every Run of it merges
        Assert.NotNull(state.Admit(Spec("d"), settings, _host).PoolEntry);
    }

    [Fact]
    public void A_released_entry_holds_its_subnet_until_its_release_finished()
    {
        var settings = Settings();
        var (state, name) = WithEntry(HostState.Empty, settings);
        var released = state.Apply(state.ReleasePoolEntry(name)!);
        Assert.False(released.Pool.ContainsKey(name));
        Assert.True(released.Releasing.ContainsKey(name));
        Assert.True(released.Networks.ContainsKey(name));
        Assert.Null(released.Admit(Spec("a"), settings, _host).PoolEntry); // nothing ready: made the normal way
        var done = released.Apply(new ReleaseFinished { Handle = name });
        Assert.False(done.Networks.ContainsKey(name));
        Assert.Null(done.ReleasePoolEntry(name));
    }

    [Fact]
    public void A_taken_container_keeps_its_runtime_name_until_its_release_finished_and_snapshots_keep_it()
    {
        var settings = Settings();
        var (state, name) = WithEntry(HostState.Empty, settings);
        state = state.Apply(state.Admit(Spec("a"), settings, _host).Registered);
        var (withPool, making) = WithEntry(state, settings, ready: false);
        var restored = HostState.Empty.Apply(withPool.ToSnapshot());
        Assert.Equal(name, restored.RuntimeOf("a"));
        Assert.False(restored.Pool[making]);
        Assert.Equal(withPool.Networks[making], restored.Networks[making]);

        var gone = restored.Apply(restored.Release("a")!);
        Assert.Equal(name, gone.RuntimeOf("a")); // its release runs under the entry's name
        Assert.Equal("a", gone.Apply(new ReleaseFinished { Handle = "a" }).RuntimeOf("a"));
    }

    [Fact]
    public void A_container_journaled_before_the_pool_goes_by_its_handle()
    {
        var old = HostState.Empty.Apply(new ContainerRegistered { Handle = "old", Incarnation = 1 });
        Assert.Equal("old", old.RuntimeOf("old"));
        Assert.Empty(old.Pool);
    }

    [Fact]
    public void A_create_that_needs_what_the_pool_holds_is_told_to_try_again()
    {
        var settings = Settings(max: 10); // the subnet pool holds 4
        var (state, _) = WithEntry(HostState.Empty, settings);
        (state, _) = WithEntry(state, settings);
        state = state.Apply(state.Admit(Spec("a") with { Privileged = true }, settings, _host).Registered);
        state = state.Apply(state.Admit(Spec("b") with { Privileged = true }, settings, _host).Registered);
        var e = Assert.Throws<GardenException>(() => state.Admit(Spec("c") with { Privileged = true }, settings, _host));
        Assert.Equal(ErrorKind.Unavailable, e.Kind);
        Assert.IsType<PoolHoldsRoom>(e.InnerException);
        // a Create the pool can serve still takes an entry
        Assert.NotNull(state.Admit(Spec("d"), settings, _host).PoolEntry);
    }

    [Fact]
    public void A_restart_keeps_made_entries_of_its_shape_up_to_the_size_none_taken_before_it_is_checked()
    {
        var settings = Settings(pool: 3, max: 4);
        var (state, a) = WithEntry(HostState.Empty, settings);
        var (state2, b) = WithEntry(state, settings);
        var (state3, halfMade) = WithEntry(state2, settings, ready: false);
        // through a snapshot, as a restart may read it
        var restored = HostState.Empty.Apply(state3.ToSnapshot());
        Assert.Equal(state3.PoolShapes, restored.PoolShapes);

        var (kept, release) = restored.KeepPool(settings);
        Assert.Equal([halfMade], release);
        Assert.Equal([a, b], kept.PoolUnchecked.Order());
        Assert.Null(kept.ReadyPoolEntry()); // unchecked: no Create takes one
        Assert.Null(kept.Admit(Spec("x"), settings, _host).PoolEntry);
        var checkedA = kept.PoolEntryChecked(a);
        Assert.Equal(a, checkedA.ReadyPoolEntry());
        var taken = checkedA.Apply(checkedA.Admit(Spec("x"), settings, _host).Registered);
        Assert.Null(taken.ReadyPoolEntry()); // b is still unchecked; a is x's
        Assert.Equal(a, taken.RuntimeOf("x"));
        Assert.Null(taken.Admit(Spec("y"), settings, _host).PoolEntry);

        // a smaller size keeps the oldest; another default rootfs, or an entry journaled by an earlier build (no shape), none
        Assert.Equal([b], restored.KeepPool(Settings(pool: 1, max: 4)).Release.Where(n => n != halfMade));
        var other = Settings(pool: 3, max: 4, extra: "default-rootfs = \"/other\"");
        Assert.Equal([a, b, halfMade], restored.KeepPool(other).Release.Order());
        var unshaped = HostState.Empty.Apply(new PoolEntryAdded { Name = "_pool-9", Number = 9 }).Apply(new PoolEntryReady { Name = "_pool-9" });
        Assert.Equal(["_pool-9"], unshaped.KeepPool(settings).Release);
    }
}
