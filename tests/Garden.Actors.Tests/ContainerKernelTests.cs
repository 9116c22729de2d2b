using System.Collections.Concurrent;
using System.Collections.Immutable;
using Garden.Actors.Container;
using Garden.Actors.Kernel;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The kernel orchestration without an ActorSystem: the creator's order, its one teardown on failure (after
/// the steps in flight), the destroyer's idempotence, and the log every step leaves.</summary>
public sealed class ContainerKernelTests : IDisposable
{
    private readonly string _stateDir = TestPaths.NewTempDir("kernel");
    private readonly FakeEffects _fakes = new();
    private readonly RecordingLog _lines = new();
    private readonly GardenSettings _settings;

    public ContainerKernelTests()
    {
        Directory.CreateDirectory(Path.Combine(_stateDir, "base"));
        _settings = GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
            $"garden {{ state-dir = \"{_stateDir}\", default-rootfs = \"{_stateDir}/base\", destroy-grace = 1s }}"));
    }

    private CallLog Calls => _fakes.Calls;
    private FakeOciRuntime Runtime => _fakes.Runtime;
    private FakeRootfs Rootfs => _fakes.Rootfs;
    private FakeNetwork Network => _fakes.Network;
    private FakeFirewall Firewall => _fakes.Firewall;
    private FakeUserNamespaces UserNamespaces => _fakes.UserNamespaces;
    private FakeOomNotifier Oom => _fakes.Oom;

    public void Dispose() => Directory.Delete(_stateDir, recursive: true);

    private sealed class RecordingLog : IContainerLog
    {
        public ConcurrentQueue<string> Lines { get; } = new();
        private void Add(string level, string format, object?[] args) => Lines.Enqueue($"{level} {string.Format(format, args)}");
        public void Debug(string format, params object?[] args) => Add("DEBUG", format, args);
        public void Info(string format, params object?[] args) => Add("INFO", format, args);
        public void Warning(string format, params object?[] args) => Add("WARNING", format, args);
        public void Error(Exception? cause, string format, params object?[] args) => Add("ERROR", format, args);
    }

    private ContainerKernel Kernel(string handle, INetworkPlumbing? network = null, IRootfsProvider? rootfs = null, ContainerEffects? effects = null)
    {
        var paths = ContainerPaths.For(_settings, handle);
        return new ContainerKernel(new KernelContext(handle, paths, effects ?? _fakes.Effects(rootfs, network), _fakes.Agent, _settings, _lines), () => { });
    }

    private ContainerSpec Spec(string handle, string? rootfs = null) =>
        new(handle, rootfs ?? Path.Combine(_stateDir, "base"), [], ImmutableDictionary<string, string>.Empty, false,
            new Limits(Pids: 10), Network: new NetworkAllocation(Ipv4Cidr.Of(Ipv4.Parse("10.9.0.0", "t"), 30), Ipv4.Parse("10.9.0.2", "t")),
            UserNamespace: Garden.Linux.UserNamespaces.IdMapping.Garden);

    private string Depot(string handle) => Path.Combine(_stateDir, "depot", handle);

    /// <summary>A Create as its container runs it: the create effect, then the settle it decides next (its agent's start).</summary>
    private static async Task<object?> CreateWhole(ContainerKernel kernel, ContainerSpec spec)
    {
        var made = await kernel.RunAsync(new Effect.Create(spec));
        await kernel.RunAsync(Effect.SettleCreate.Instance);
        return made;
    }

    [Fact]
    public async Task The_create_effect_returns_once_runc_started_it_and_the_settle_waits_for_the_agent()
    {
        var agentUp = new TaskCompletionSource();
        _fakes.Agent.PingGate = agentUp.Task;
        var kernel = Kernel("a");
        // what the container journals as made while its agent starts
        var made = Assert.IsType<CreatedRoot>(await kernel.RunAsync(new Effect.Create(Spec("a"))).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(made.Settling);
        Assert.Equal(1, Calls.Count(new Call.Ran("a")));
        var settle = kernel.RunAsync(Effect.SettleCreate.Instance);
        await Task.Delay(50);
        Assert.False(settle.IsCompleted); // the Create is not answered before the agent is
        Assert.False(Oom.Watching("a"));
        agentUp.SetResult();
        await settle.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(Oom.Watching("a"));
        Assert.Equal(0, UserNamespaces.Held);
        Assert.NotNull(Firewall.Of("a"));
        Assert.Contains(_lines.Lines, l => l.StartsWith("INFO agent finished in "));
    }

    [Fact]
    public async Task An_agent_that_does_not_answer_fails_the_settle_and_nothing_of_the_container_is_left()
    {
        var kernel = Kernel("z");
        _fakes.Agent.Reachable = false;
        Assert.True(Assert.IsType<CreatedRoot>(await kernel.RunAsync(new Effect.Create(Spec("z")))).Settling);
        var e = await Assert.ThrowsAsync<GardenException>(() => kernel.RunAsync(Effect.SettleCreate.Instance));
        Assert.Contains("agent did not answer", e.Message);
        Assert.Empty(Runtime.Containers);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Empty(Network.Handles);
        Assert.Null(Firewall.Of("z"));
        Assert.Equal(0, UserNamespaces.Held);
        Assert.False(Oom.Watching("z"));
        Assert.False(Directory.Exists(Depot("z")));
    }

    /// <summary>Network plumbing whose SetUp waits for a gate (a slow kernel), then does what the fake does.</summary>
    private sealed class SlowNetwork(FakeNetwork inner, Task gate) : INetworkPlumbing
    {
        public async Task SetUpAsync(ContainerNetwork network, CancellationToken ct, int? netnsOfPid = null)
        {
            await gate;
            await inner.SetUpAsync(network, ct, netnsOfPid);
        }
        public Task WriteNameFilesAsync(ContainerNetwork network, NameFiles files, CancellationToken ct) => inner.WriteNameFilesAsync(network, files, ct);
        public Task TearDownAsync(ContainerNetwork network, CancellationToken ct) => inner.TearDownAsync(network, ct);
        public bool Exists(ContainerNetwork network) => inner.Exists(network);
        public NetCounters Counters(ContainerNetwork network) => inner.Counters(network);
        public Task SetBandwidthAsync(ContainerNetwork network, Bandwidth? limit, CancellationToken ct) => inner.SetBandwidthAsync(network, limit, ct);
        public Task<Bandwidth?> ReadBandwidthAsync(ContainerNetwork network, CancellationToken ct) => inner.ReadBandwidthAsync(network, ct);
        public Task<IReadOnlyList<string>> PruneAsync(string prefix, IReadOnlyCollection<ContainerNetwork> live, CancellationToken ct) =>
            inner.PruneAsync(prefix, live, ct);
    }

    /// <summary>A rootfs that cannot be removed (a mount still busy).</summary>
    private sealed class StuckRootfs(FakeRootfs inner) : IRootfsProvider
    {
        public Task<string> CreateAsync(string handle, RootfsLayers baseRootfs, RootfsPaths paths, string? layerDir, UserNamespaceRoot? userns, CancellationToken ct) =>
            inner.CreateAsync(handle, baseRootfs, paths, layerDir, userns, ct);
        public Task DestroyAsync(string handle, RootfsPaths paths, CancellationToken ct) => throw new IOException("umount: target is busy");
        public bool IsMounted(string mountPoint) => inner.IsMounted(mountPoint);
    }

    [Fact]
    public async Task A_create_makes_each_piece_in_order_and_logs_each_step_with_its_duration()
    {
        var kernel = Kernel("c");
        Assert.Equal(new CreatedRoot(Path.Combine(_settings.MountDirFor("c"), "rootfs"), null) { Settling = true }, await CreateWhole(kernel, Spec("c")));
        var calls = Calls.All.ToList();
        Assert.Equal(new Call.UserNamespaceMade("c", Garden.Linux.UserNamespaces.IdMapping.Garden), calls[0]);
        Assert.True(calls.IndexOf(new Call.NetworkSetUp("c", Ipv4.Parse("10.9.0.2", "t"))) is >= 0 and var up && up < calls.IndexOf(new Call.FirewallApplied("c", 0, 0)));
        // runc joins the network namespace of the user namespace's holder, which `ip netns attach` binds for later
        Assert.Matches(@"\A/proc/[0-9]+/ns/net\z", Runtime.Bundles["c"].NetnsPath);
        Assert.True(calls.IndexOf(new Call.RootfsCreated("c")) < calls.IndexOf(new Call.Ran("c")));
        Assert.True(calls.IndexOf(new Call.Ran("c")) < calls.IndexOf(new Call.CgroupApplied("c"))); // limits go into the cgroup runc made
        Assert.Equal(0, UserNamespaces.Held); // the holder goes once runc has joined
        Assert.True(Oom.Watching("c")); // followed from its create on
        // the name files are the container's own, mounted writable (container root may rewrite them, as in Garden) before any mount of the caller
        var files = Network.NameFiles["c"];
        Assert.Equal(Path.Combine(Depot("c"), "hosts"), files.HostsPath);
        Assert.Contains("10.9.0.2 c\n", File.ReadAllText(files.HostsPath));
        Assert.Equal([("/etc/hosts", false), ("/etc/resolv.conf", false)], Runtime.Bundles["c"].BindMounts!.Take(2).Select(m => (m.Destination, m.ReadOnly)));

        var lines = _lines.Lines.ToList();
        Assert.Contains(lines, l => l.StartsWith("INFO create starting (rootfs "));
        foreach (var step in new[] { "depot", "rootfs (idmapped base)", "network", "firewall", "runtime", "limits", "agent", "create" })
            Assert.Contains(lines, l => l.StartsWith($"INFO {step} finished in ") && l.EndsWith(" ms"));
    }

    [Fact]
    public async Task Unprivileged_runc_starts_while_the_links_are_made_and_the_create_waits_for_them()
    {
        var gate = new TaskCompletionSource();
        var kernel = Kernel("p", network: new SlowNetwork(Network, gate.Task));
        var create = CreateWhole(kernel, Spec("p"));
        // runc runs while the network is still being set up (it joins the holder's namespace)...
        Assert.True(SpinWait.SpinUntil(() => Calls.Count(new Call.Ran("p")) == 1, 5000));
        await Task.Delay(50);
        // ...but the Create does not answer, the rules wait for the links, and the holder stays until the namespace is bound
        Assert.False(create.IsCompleted);
        Assert.Null(Firewall.Of("p"));
        Assert.Equal(1, UserNamespaces.Held);
        Assert.DoesNotContain(Calls.All, c => c is Call.NetworkSetUp { Handle: "p" });
        gate.SetResult();
        await create;
        Assert.Contains(Calls.All, c => c is Call.NetworkSetUp { Handle: "p" });
        Assert.NotNull(Firewall.Of("p"));
        Assert.Equal(0, UserNamespaces.Held);
    }

    [Fact]
    public async Task A_privileged_runc_waits_for_the_namespace_the_network_step_makes()
    {
        var gate = new TaskCompletionSource();
        var kernel = Kernel("q", network: new SlowNetwork(Network, gate.Task));
        var create = CreateWhole(kernel, Spec("q") with { Privileged = true, UserNamespace = null });
        await Task.Delay(100);
        Assert.Equal(0, Calls.Count(new Call.Ran("q"))); // `ip netns add` makes its namespace: runc needs it first
        gate.SetResult();
        await create;
        var calls = Calls.All.ToList();
        Assert.True(calls.IndexOf(new Call.NetworkSetUp("q", Ipv4.Parse("10.9.0.2", "t"))) < calls.IndexOf(new Call.Ran("q")));
        Assert.Equal(ContainerNetwork.NetnsDir, Path.GetDirectoryName(Runtime.Bundles["q"].NetnsPath));
    }

    [Fact]
    public async Task A_step_that_fails_while_another_is_in_flight_waits_for_it_then_the_one_destroyer_releases_everything()
    {
        var gate = new TaskCompletionSource();
        var kernel = Kernel("f", network: new SlowNetwork(Network, gate.Task));
        // the rootfs fails (its base does not exist) while the network is still being set up
        var create = CreateWhole(kernel, Spec("f", rootfs: "/nonexistent-garden-test-base"));
        Assert.True(SpinWait.SpinUntil(() => Calls.Count(new Call.RootfsCreated("f")) == 1, 5000)); // the rootfs step has failed
        await Task.Delay(100);
        Assert.False(create.IsCompleted); // tearing down under a step still running would race
        Assert.DoesNotContain(Calls.All, c => c is Call.Killed { Handle: "f" });
        gate.SetResult();
        var e = await Assert.ThrowsAsync<RootfsException>(() => create);
        Assert.Contains("/nonexistent-garden-test-base", e.Message);
        // what was made is gone: the network set up meanwhile, the holder, the depot; and the teardown was Destroy's own
        Assert.Empty(Network.Handles);
        Assert.Equal(0, UserNamespaces.Held);
        Assert.False(Directory.Exists(Depot("f")));
        Assert.Contains(new Call.Killed("f", 9), Calls.All);
        Assert.Contains(new Call.CgroupReleased("f"), Calls.All);
        Assert.Contains(new Call.RootfsDestroyed("f"), Calls.All);
        Assert.Contains(_lines.Lines, l => l.StartsWith("WARNING rootfs (idmapped base) failed after "));
        Assert.Contains(_lines.Lines, l => l.StartsWith("WARNING create failed after "));
    }

    [Fact]
    public async Task A_runtime_that_fails_after_the_firewall_went_up_leaves_no_rule_link_or_mount()
    {
        Runtime.FailRunWith = "exec format error";
        var kernel = Kernel("r");
        var e = await Assert.ThrowsAsync<Garden.Linux.Runtime.OciRuntimeException>(() => CreateWhole(kernel, Spec("r")));
        Assert.Contains("exec format error", e.Message);
        Assert.Null(Firewall.Of("r"));
        Assert.Empty(Network.Handles);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Equal(0, UserNamespaces.Held);
        Assert.False(Oom.Watching("r"));
        Assert.False(Directory.Exists(Depot("r")));
    }

    [Fact]
    public async Task A_create_whose_teardown_fails_too_says_both()
    {
        Runtime.FailRunWith = "exec format error";
        var kernel = Kernel("s", rootfs: new StuckRootfs(Rootfs));
        var e = await Assert.ThrowsAsync<CreateUndoFailedException>(() => CreateWhole(kernel, Spec("s")));
        Assert.Contains("exec format error", e.Cause.Message);
        Assert.Equal("umount: target is busy", e.Teardown.Message);
        Assert.Contains(_lines.Lines, l => l.StartsWith("ERROR create: undoing it failed: umount: target is busy"));
    }

    [Fact]
    public async Task The_destroyer_is_idempotent_and_releases_a_container_of_which_nothing_or_everything_was_made()
    {
        var nothing = Kernel("n");
        await nothing.RunAsync(new Effect.Destroy(Graceful: false, Spec("n").Network));
        await nothing.RunAsync(new Effect.Destroy(Graceful: false, Spec("n").Network));
        Assert.False(Directory.Exists(Depot("n")));

        var kernel = Kernel("d");
        await CreateWhole(kernel, Spec("d"));
        await kernel.RunAsync(new Effect.Destroy(Graceful: true, Spec("d").Network));
        await kernel.RunAsync(new Effect.Destroy(Graceful: true, Spec("d").Network));
        Assert.Empty(Runtime.Containers);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Empty(Network.Handles);
        Assert.Null(Firewall.Of("d"));
        Assert.False(Oom.Watching("d"));
        Assert.False(Directory.Exists(Depot("d")));
        Assert.Equal(2, Calls.Count(new Call.Deleted("d"))); // the second asked again, and found nothing to remove
    }

    [Fact]
    public async Task A_stop_only_destroy_leaves_nothing_running_and_the_rest_to_the_release()
    {
        var kernel = Kernel("s");
        await CreateWhole(kernel, Spec("s"));
        await kernel.RunAsync(new Effect.Destroy(Graceful: true, Spec("s").Network, StopOnly: true));
        // nothing can run: runc forgot it, its cgroup is gone
        Assert.Empty(Runtime.Containers);
        Assert.Contains(new Call.CgroupReleased("s"), Calls.All);
        Assert.False(Oom.Watching("s"));
        // what is left is the release's
        Assert.Equal(1, Rootfs.MountedCount);
        Assert.NotNull(Firewall.Of("s"));
        await new ContainerDestroyer(kernel.Context).ReleaseAsync(Spec("s").Network);
        await new ContainerDestroyer(kernel.Context).ReleaseAsync(Spec("s").Network); // idempotent
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Empty(Network.Handles);
        Assert.Null(Firewall.Of("s"));
        Assert.False(Directory.Exists(Depot("s")));
    }

    [Fact]
    public async Task The_undo_of_a_recovered_actor_waits_for_the_create_its_stopped_predecessor_started()
    {
        // The first actor's Create is in runc when its CreateStarted write fails: it stops, and the host recovers a second
        // actor of the container, which finds no CreateStarted and undoes it by name.
        var effects = _fakes.Effects();
        var runcStarted = new TaskCompletionSource();
        Runtime.RunGate = runcStarted.Task;
        var first = Kernel("w", effects: effects with { KernelWorkAfter = Task.CompletedTask }); // a copy shares what is in flight
        var create = first.RunAsync(new Effect.Create(Spec("w")));
        Assert.True(SpinWait.SpinUntil(() => Calls.Count(new Call.Ran("w")) == 1, 5000));
        var undo = Kernel("w", effects: effects).RunAsync(new Effect.Destroy(Graceful: false, null));
        await Task.Delay(100);
        Assert.False(undo.IsCompleted); // not while runc may still make the container
        Assert.DoesNotContain(new Call.Deleted("w"), Calls.All);
        runcStarted.SetResult();
        await create.WaitAsync(TimeSpan.FromSeconds(5));
        await undo.WaitAsync(TimeSpan.FromSeconds(5));
        // what the first one made is gone (the network is the host's release: it has the allocation)
        Assert.Empty(Runtime.Containers);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.False(Directory.Exists(Depot("w")));
        Assert.Contains(_lines.Lines, l => l == "INFO waiting for the kernel work of a create still in flight");
        // and a container of another name never waits for it
        var held = new TaskCompletionSource();
        Runtime.RunGate = held.Task;
        var other = Kernel("v", effects: effects);
        var otherCreate = other.RunAsync(new Effect.Create(Spec("v")));
        await Kernel("u", effects: effects).RunAsync(new Effect.Destroy(Graceful: false, null)).WaitAsync(TimeSpan.FromSeconds(5));
        held.SetResult();
        await otherCreate.WaitAsync(TimeSpan.FromSeconds(5));
        await other.RunAsync(new Effect.Destroy(Graceful: false, Spec("v").Network));
    }
}
