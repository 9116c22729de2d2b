using Garden.Linux.Agent;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;
using Garden.Protocol.Agent;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

// Each fake used by the actor tests obeys the same contract as the real implementation: one test body, two subjects.

public abstract class RootfsContract : IDisposable
{
    protected readonly string Dir = TestPaths.NewTempDir("rootfs");
    protected abstract IRootfsProvider Provider { get; }
    protected string Depot => Path.Combine(Dir, "depot");
    protected RootfsPaths Paths => new(Path.Combine(Dir, "mounts", "c"), Depot);

    /// <summary>The base the root is made of: the installed default rootfs (a fake needs only a directory).</summary>
    protected virtual string Base => TestPaths.DefaultRootfs;

    public void Dispose()
    {
        Provider.DestroyAsync("c", Paths, default).Wait();
        Directory.Delete(Dir, true);
    }

    [GatedFact]
    public async Task A_missing_base_is_a_RootfsException_naming_it()
    {
        var e = await Assert.ThrowsAsync<RootfsException>(() => Provider.CreateAsync("c", "/no/such/rootfs", Paths, null, null, default));
        Assert.Contains("/no/such/rootfs", e.Message);
        Assert.False(Provider.IsMounted(Paths.MountPoint));
    }

    [GatedFact]
    public async Task Create_mounts_and_destroy_unmounts_idempotently()
    {
        var root = await Provider.CreateAsync("c", Base, Paths, null, null, default);
        Assert.Equal(Paths.MountPoint, root);
        Assert.True(Provider.IsMounted(Paths.MountPoint));
        await Provider.DestroyAsync("c", Paths, default);
        Assert.False(Provider.IsMounted(Paths.MountPoint));
        await Provider.DestroyAsync("c", Paths, default);
    }
}

[RequiresRoot]
public class RealRootfsContract : RootfsContract
{
    private OverlayRootfs? _provider;
    protected override IRootfsProvider Provider => _provider ??= new OverlayRootfs(LayersByFd);

    /// <summary>The new mount API with each layer an fd, where the kernel takes it (this host's does); the subclass below
    /// runs every test again through mount(2) with views, the path of older kernels.</summary>
    protected virtual bool LayersByFd => OverlayRootfs.KernelTakesLayersByFd;

    [GatedFact]
    public async Task Paths_with_colons_commas_and_backslashes_are_layers_as_they_are()
    {
        // mount(2)'s option string splits layers at ':' and options at ','; a layer named with them is still one layer
        var odd = Path.Combine(Dir, @"odd:la,yer\x");
        Directory.CreateDirectory(Path.Combine(odd, "etc"));
        File.WriteAllText(Path.Combine(odd, "etc", "layer"), "odd");
        var under = Path.Combine(Dir, "under:b");
        Directory.CreateDirectory(Path.Combine(under, "etc"));
        File.WriteAllText(Path.Combine(under, "etc", "layer"), "under");
        File.WriteAllText(Path.Combine(under, "only-under"), "");
        var paths = new RootfsPaths(Path.Combine(Dir, "mounts", "c"), Path.Combine(Dir, @"depot:x,y\z"));
        var root = await Provider.CreateAsync("c", new RootfsLayers([under, odd], FromImage: true), paths, null, null, default);
        Assert.Equal("odd", File.ReadAllText(Path.Combine(root, "etc", "layer")));
        Assert.True(File.Exists(Path.Combine(root, "only-under")));
        File.WriteAllText(Path.Combine(root, "written"), "w");
        Assert.True(File.Exists(Path.Combine(paths.Depot, "upper", "written")));
        await Provider.DestroyAsync("c", paths, default);
        Assert.False(Provider.IsMounted(root));
        Assert.False(Directory.Exists(Path.Combine(paths.Depot, "upper")));
    }

    [GatedFact]
    public async Task An_image_of_many_layers_with_long_paths_is_stacked_top_first_and_goes_without_a_trace()
    {
        // 40 layers whose paths alone (8 KiB) would not fit in the mount options' page: the overlay names short views
        var layers = Enumerable.Range(0, 40).Select(i =>
        {
            var dir = Path.Combine(Dir, "layers", new string((char)('a' + i % 26), 150) + i, "fs");
            Directory.CreateDirectory(Path.Combine(dir, "etc"));
            File.WriteAllText(Path.Combine(dir, "etc", "layer"), $"{i}");
            File.WriteAllText(Path.Combine(dir, $"only-{i}"), "");
            return dir;
        }).ToList();
        var root = await Provider.CreateAsync("c", new RootfsLayers(layers, FromImage: true), Paths, null, null, default);
        Assert.Equal("39", File.ReadAllText(Path.Combine(root, "etc", "layer")));   // the top layer wins
        Assert.True(File.Exists(Path.Combine(root, "only-0")) && File.Exists(Path.Combine(root, "only-39")));
        Assert.False(Garden.Linux.Disk.MountTable.HasMountsBelow(Paths.LowerMount));   // the views went once the overlay held them
        await Provider.DestroyAsync("c", Paths, default);
        Assert.False(Garden.Linux.Disk.MountTable.HasMountsBelow(Paths.MountDir));
        Assert.False(Directory.Exists(Paths.MountDir));
        Assert.Equal("0", File.ReadAllText(Path.Combine(layers[0], "etc", "layer")));
    }

    [GatedFact]
    public async Task Writes_land_in_the_container_layer_never_in_the_base()
    {
        var root = await Provider.CreateAsync("c", TestPaths.DefaultRootfs, Paths, null, null, default);
        File.WriteAllText(Path.Combine(root, "etc", "written-by-test"), "x");
        File.Delete(Path.Combine(root, "etc", "hosts"));
        Assert.False(File.Exists(Path.Combine(TestPaths.DefaultRootfs, "etc", "written-by-test")));
        Assert.True(File.Exists(Path.Combine(TestPaths.DefaultRootfs, "etc", "hosts")));
        Assert.True(File.Exists(Path.Combine(Depot, "upper", "etc", "written-by-test")));
        await Provider.DestroyAsync("c", Paths, default);
        Assert.False(Directory.Exists(Path.Combine(Depot, "upper")));
        Assert.False(Directory.Exists(Paths.MountDir));
        Assert.True(File.Exists(Path.Combine(TestPaths.DefaultRootfs, "etc", "hosts")));
    }

    [GatedFact]
    public async Task The_root_is_mounted_nosuid_and_nodev_in_a_0700_dir_of_its_owner()
    {
        var root = await Provider.CreateAsync("c", TestPaths.DefaultRootfs, Paths, null, null, default);
        var options = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).Single(f => f[4] == root)[5].Split(',');
        Assert.Contains("nosuid", options);
        Assert.Contains("nodev", options);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Paths.MountDir));
    }

    [InstallFact] // the user namespace holder is the agent binary
    public async Task With_a_user_namespace_the_base_is_seen_through_its_mapping_and_the_layer_is_container_roots()
    {
        var mapping = IdMapping.PerContainer(0x7fff_0000);
        await using var userns = await new HolderUserNamespaces(TestPaths.AgentBinary).CreateAsync("c", mapping, default);
        var root = await Provider.CreateAsync("c", TestPaths.DefaultRootfs,
            Paths, null, new UserNamespaceRoot(userns.UserNamespacePath, mapping.RootUid, mapping.RootGid), default);
        // the base's root-owned files show as the container root's host uid through the idmapped lower layer
        Assert.Equal(0u, Owner(Path.Combine(TestPaths.DefaultRootfs, "bin")));
        Assert.Equal(0x7fff_0000u, Owner(Path.Combine(root, "bin")));
        Assert.Equal(0x7fff_0000u, Owner(Path.Combine(Depot, "upper")));
        Assert.Equal(0x7fff_0000u, Owner(Path.Combine(Depot, "work")));
        Assert.Equal(0x7fff_0000u, Owner(Paths.MountDir));
        // the idmapped view itself was only needed while the overlay was mounted
        Assert.False(Directory.Exists(Paths.LowerMount));
        Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), l => l.Split(' ')[4] == Paths.LowerMount);
        await Provider.DestroyAsync("c", Paths, default);
        Assert.False(Provider.IsMounted(root));
    }

    private static uint Owner(string path)
    {
        var r = Garden.Linux.Process.Command.RunAsync("/usr/bin/stat", ["-c", "%u", path]).Result;
        return uint.Parse(r.Stdout.Trim());
    }
}

/// <summary>The same contract through mount(2) and attached views of the layers: what a kernel whose overlayfs takes no
/// layer as an fd gets.</summary>
[RequiresRoot]
public sealed class RealRootfsWithViewsContract : RealRootfsContract
{
    protected override bool LayersByFd => false;
}

public sealed class FakeRootfsContract : RootfsContract
{
    protected override IRootfsProvider Provider { get; } = new FakeRootfs(new CallLog());

    protected override string Base => Directory.CreateDirectory(Path.Combine(Dir, "base")).FullName;
}

/// <summary>The agent contract: the real agent in a real container, and FakeAgent.</summary>
public abstract class AgentContract
{
    protected abstract IAgentClient Agent { get; }
    private static SpawnRequest Spawn(string id, string path, params string[] args)
    {
        var r = new SpawnRequest { Id = id, Path = path };
        r.Args.AddRange(args);
        return r;
    }

    private string Id() => $"p{Guid.NewGuid():N}"[..12];

    [GatedFact]
    public async Task Ping_answers()
    {
        var pong = await Agent.PingAsync(default);
        Assert.Equal(1, pong.AgentPid);
    }

    [GatedFact]
    public async Task A_spawned_process_is_listed_and_attach_gives_its_exit()
    {
        var id = Id();
        var spawned = await Agent.SpawnAsync(Spawn(id, "/bin/true"), default);
        Assert.Equal(id, spawned.Id);
        await using var stream = await Agent.AttachAsync(id, 0, default);
        AgentEvent? evt;
        do evt = await stream.ReadAsync(default); while (evt is { KindCase: not AgentEvent.KindOneofCase.Exited });
        Assert.Equal(0, evt!.Exited.ExitCode);
        Assert.Contains((await Agent.ListAsync(default)), p => p.Id == id && p.Exited);
    }

    [GatedFact]
    public async Task A_wait_for_exits_answers_with_an_unreported_exit_once_and_then_waits()
    {
        var id = Id();
        await Agent.SpawnAsync(Spawn(id, "/bin/true"), default);
        ProcessEntry? seen = null;
        // an exit another test left unreported may answer first
        for (var i = 0; i < 5 && seen is not { Exited: true }; i++)
            seen = (await Agent.WaitExitsAsync(TimeSpan.FromSeconds(10), default)).SingleOrDefault(p => p.Id == id);
        Assert.True(seen is { Exited: true, ExitReported: false }, $"{seen}");
        Assert.Equal(0, seen!.Exit.ExitCode);
        // reported by that answer: a wait now runs to its timeout and shows it as reported
        var again = (await Agent.WaitExitsAsync(TimeSpan.FromMilliseconds(300), default)).SingleOrDefault(p => p.Id == id);
        Assert.True(again is null || again.ExitReported, $"{again}");
    }

    [GatedFact]
    public async Task A_duplicate_id_is_ALREADY_EXISTS()
    {
        var id = Id();
        await Agent.SpawnAsync(Spawn(id, "/bin/true"), default);
        var e = await Assert.ThrowsAsync<AgentException>(() => Agent.SpawnAsync(Spawn(id, "/bin/true"), default));
        Assert.Equal(ErrorCode.AlreadyExists, e.Code);
    }

    [GatedFact]
    public async Task Unknown_ids_are_NOT_FOUND()
    {
        Assert.Equal(ErrorCode.NotFound, (await Assert.ThrowsAsync<AgentException>(() => Agent.AttachAsync("nope", 0, default))).Code);
        Assert.Equal(ErrorCode.NotFound, (await Assert.ThrowsAsync<AgentException>(() => Agent.SignalAsync("nope", 15, default))).Code);
    }

    [GatedFact]
    public async Task A_missing_executable_is_NOT_EXECUTABLE_naming_the_path()
    {
        var e = await Assert.ThrowsAsync<AgentException>(() => Agent.SpawnAsync(Spawn(Id(), "/missing/tool"), default));
        Assert.Equal(ErrorCode.NotExecutable, e.Code);
        Assert.Contains("/missing/tool", e.Message);
    }
}

[RequiresInstall]
public sealed class RealAgentContract(RealContainerFixture fixture) : AgentContract, IClassFixture<RealContainerFixture>
{
    protected override IAgentClient Agent => fixture.Container.Agent;
}

public sealed class FakeAgentContract : AgentContract
{
    protected override IAgentClient Agent { get; } = new FakeAgent(new CallLog()) { WaitsForExits = true };
}

public sealed class RealContainerFixture : IAsyncLifetime
{
    public RealContainer Container { get; private set; } = null!;
    // on a machine without root or an install its tests are skipped ([RequiresInstall], [InstallFact]): nothing to start
    public async Task InitializeAsync()
    {
        if (Gate.Unmet(Needs.Root | Needs.Install) is null) Container = await RealContainer.StartAsync("fixture");
    }

    public async Task DisposeAsync()
    {
        if (Container is not null) await Container.DisposeAsync();
    }
}

/// <summary>The OCI runtime contract, against runc and FakeOciRuntime.</summary>
public abstract class OciRuntimeContract
{
    protected abstract Task<(IOciRuntime Runtime, BundleSpec Spec, string BundleDir, Func<Task> Cleanup)> PrepareAsync();

    [GatedFact]
    public async Task Run_kill_wait_delete_and_unknown_ids_are_not_errors()
    {
        var (runtime, spec, bundle, cleanup) = await PrepareAsync();
        try
        {
            await runtime.RunAsync(spec, bundle, default);
            var state = await runtime.StateAsync(spec.Handle, default);
            Assert.Equal(OciStatus.Running, state!.Status);
            Assert.True(state.Pid > 0);
            await Assert.ThrowsAsync<OciRuntimeException>(() => runtime.RunAsync(spec, bundle, default));
            await Assert.ThrowsAsync<OciRuntimeException>(() => runtime.DeleteAsync(spec.Handle, default));
            await runtime.KillAsync(spec.Handle, 9, false, default);
            Assert.True(await runtime.WaitStoppedAsync(spec.Handle, TimeSpan.FromSeconds(10), default));
            Assert.Equal(OciStatus.Stopped, (await runtime.StateAsync(spec.Handle, default))!.Status);
            await runtime.KillAsync(spec.Handle, 9, false, default);
            await runtime.DeleteAsync(spec.Handle, default);
            Assert.Null(await runtime.StateAsync(spec.Handle, default));
            await runtime.DeleteAsync(spec.Handle, default);
            await runtime.KillAsync("garden-test-never-existed", 9, false, default);
        }
        finally
        {
            await cleanup();
        }
    }
}

[RequiresInstall]
public sealed class RealOciRuntimeContract : OciRuntimeContract
{
    protected override async Task<(IOciRuntime, BundleSpec, string, Func<Task>)> PrepareAsync()
    {
        // A container whose runtime part the test drives itself: start one, take its bundle spec, remove it from runc.
        // privileged: the spec is run again below, and a user namespace exists only while gardend holds it
        var c = await RealContainer.StartAsync("runtime", privileged: true);
        await c.Runtime.KillAsync(c.Handle, 9, false, default);
        await c.Runtime.WaitStoppedAsync(c.Handle, TimeSpan.FromSeconds(10), default);
        await c.Runtime.DeleteAsync(c.Handle, default);
        return (c.Runtime, c.Spec(), Path.Combine(c.Dir, "bundle"), async () => await c.DisposeAsync());
    }
}

public sealed class FakeOciRuntimeContract : OciRuntimeContract
{
    protected override Task<(IOciRuntime, BundleSpec, string, Func<Task>)> PrepareAsync() => Task.FromResult<(IOciRuntime, BundleSpec, string, Func<Task>)>(
        (new FakeOciRuntime(new CallLog()), new BundleSpec("fake", "/r", "/a", "/s", "/l", "/c", false, []), "/b", () => Task.CompletedTask));
}
