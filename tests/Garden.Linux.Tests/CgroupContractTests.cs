using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Garden.Linux.Cgroups;
using Garden.Linux.Host;
using Garden.Linux.Interop;
using Garden.Linux.Runtime;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

// The fakes the actor tests stand on for cgroups, OOM notification and the host's figures, held to what the real ones
// do: one test body, two subjects (as in ContractTests.cs). The real cgroup subjects work in throwaway cgroups.

/// <summary>Throwaway cgroups under /sys/fs/cgroup (parent garden-test-&lt;what&gt;-&lt;pid&gt;-&lt;n&gt;) in the layout the
/// product chose (<see cref="CgroupManager.Create"/>: v1 hierarchies or the v2 tree); made as runc makes a container's,
/// with real processes in them; all of it removed on dispose (the leak check of scripts/test.sh looks for garden-test-*).</summary>
internal sealed class ThrowawayCgroups : IDisposable
{
    private const string Root = "/sys/fs/cgroup";
    private static int _next;
    private readonly List<System.Diagnostics.Process> _processes = [];
    private readonly HashSet<string> _made = [];

    public ThrowawayCgroups(string what)
    {
        Parent = $"garden-test-{what}-{Environment.ProcessId}-{Interlocked.Increment(ref _next)}";
        Manager = CgroupManager.Create(Parent, Root);
    }

    public string Parent { get; }
    public ICgroupManager Manager { get; }
    public static bool Unified => CgroupManager.IsUnified(Root);

    /// <summary>Where a container's cgroup is in each hierarchy: v2 one tree, v1 one per controller the manager uses.</summary>
    private static IEnumerable<string> Hierarchies => Unified
        ? [Root]
        : new[] { "memory", "cpu", "cpuacct", "pids" }.Select(c => Path.Combine(Root, c)).Where(Directory.Exists);

    private string DirOf(string hierarchy, string handle) => Path.Combine(hierarchy, Parent, handle);

    /// <summary>What runc does for the container's linux.cgroupsPath (<see cref="ICgroupManager.PathFor"/>): makes it in
    /// every hierarchy (v2: with the controllers enabled down to it, as runc's cgroup manager does).</summary>
    public void MakeLikeRunc(string handle)
    {
        _made.Add(handle);
        foreach (var h in Hierarchies)
        {
            if (Unified)
            {
                var dir = h;
                foreach (var part in new[] { Parent, handle })
                {
                    File.AppendAllText(Path.Combine(dir, "cgroup.subtree_control"), "+memory +cpu +pids");
                    dir = Path.Combine(dir, part);
                    Directory.CreateDirectory(dir);
                }
            }
            Directory.CreateDirectory(h + Manager.PathFor(handle));
        }
    }

    /// <summary>What `runc delete` does: removes the cgroup it made (a child gardend made in it keeps it, as the kernel
    /// refuses to remove a cgroup with children).</summary>
    public void RemoveLikeRunc(string handle)
    {
        foreach (var h in Hierarchies)
            try { Directory.Delete(h + Manager.PathFor(handle)); }
            catch (IOException) { }
    }

    /// <summary>Starts `sh -c script` in the container's cgroup (held at a `read` until it is in), and lets it go.</summary>
    public System.Diagnostics.Process StartIn(string handle, string script)
    {
        var p = new System.Diagnostics.Process
        {
            StartInfo = new ProcessStartInfo("/bin/sh", ["-c", "read go; " + script])
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            },
        };
        p.Start();
        _processes.Add(p);
        foreach (var h in Hierarchies) File.WriteAllText(Path.Combine(h + Manager.PathFor(handle), "cgroup.procs"), p.Id.ToString());
        p.StandardInput.WriteLine("go");
        p.StandardInput.Flush();
        return p;
    }

    /// <summary>One OOM kill in the container's cgroup: a process takes 64 MiB under a 16 MiB limit (memory and swap).</summary>
    public void OomKill(string handle)
    {
        Manager.Apply(handle, new ResourceLimits(MemoryBytes: 16UL << 20));
        var hog = StartIn(handle, "exec perl -e '$x = \"a\" x (64 << 20); sleep 5'");
        Assert.True(hog.WaitForExit(30_000), "the memory hog was not killed");
        Assert.Equal(137, hog.ExitCode); // SIGKILL from the OOM killer
    }

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(true); p.WaitForExit(5000); }
            catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var handle in _made)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            foreach (var h in Hierarchies)
            {
                var procs = Path.Combine(h + Manager.PathFor(handle), "cgroup.procs");
                while (File.Exists(procs) && File.ReadAllLines(procs).Any(l => l.Length > 0) && DateTime.UtcNow < deadline)
                {
                    foreach (var pid in File.ReadAllLines(procs).Where(l => l.Length > 0)) Sys.Kill(int.Parse(pid), Tmds.Linux.LibC.SIGKILL);
                    Thread.Sleep(20);
                }
            }
            RemoveLikeRunc(handle);
            Manager.Release(handle);
        }
        foreach (var h in Hierarchies) Assert.False(Directory.Exists(Path.Combine(h, Parent)), $"{Path.Combine(h, Parent)} left behind");
    }
}

/// <summary>The cgroup manager contract: a container's cgroup exists from runc's start until Release after runc's delete;
/// limits applied are read back, a change keeps what it does not name; metrics show the limits in force.</summary>
public abstract class CgroupManagerContract : IDisposable
{
    protected abstract ICgroupManager Cgroups { get; }

    /// <summary>runc starts the container (its cgroup is made at <see cref="ICgroupManager.PathFor"/>).</summary>
    protected abstract Task StartLikeRuncAsync(string handle);

    /// <summary>runc deletes the stopped container.</summary>
    protected abstract Task DeleteLikeRuncAsync(string handle);

    public abstract void Dispose();

    [GatedFact]
    public async Task A_cgroup_exists_from_the_containers_start_and_Release_after_its_delete_leaves_nothing()
    {
        Assert.False(Cgroups.Exists("c1"));
        Assert.StartsWith("/", Cgroups.PathFor("c1"));
        Assert.Contains("/c1", Cgroups.PathFor("c1"));
        // gardend prepares the processes' cgroup before runc starts (null: no pids controller, or a fake)
        if (Cgroups.PrepareProcessCgroup("c1") is { } work) Assert.True(Directory.Exists(work), work);
        await StartLikeRuncAsync("c1");
        await StartLikeRuncAsync("c2");
        Assert.True(Cgroups.Exists("c1"));
        await DeleteLikeRuncAsync("c1");
        Cgroups.Release("c1");
        Assert.False(Cgroups.Exists("c1"));
        Cgroups.Release("c1"); // idempotent
        Assert.True(Cgroups.Exists("c2")); // another container's is not touched
    }

    [GatedFact]
    public async Task Limits_applied_are_read_back_a_change_keeps_what_it_does_not_name_and_metrics_show_them()
    {
        await StartLikeRuncAsync("lim");
        var fresh = Cgroups.Read("lim");
        Assert.Equal((null, null, null), (fresh.MemoryBytes, fresh.CpuQuota, fresh.Pids)); // unlimited
        Assert.NotNull(fresh.CpuWeight); // every cgroup has a weight: the kernel's default

        var limits = new ResourceLimits(MemoryBytes: 64UL << 20, CpuWeight: 512, CpuQuota: 0.5, Pids: 100);
        Cgroups.Apply("lim", limits);
        Assert.Equal(limits, Cgroups.Read("lim"));
        Cgroups.Apply("lim", new ResourceLimits(Pids: 7));
        Assert.Equal(limits with { Pids = 7 }, Cgroups.Read("lim"));

        var metrics = Cgroups.Metrics("lim");
        Assert.Equal(64UL << 20, metrics.MemoryLimitBytes);
        Assert.Equal(7UL, metrics.PidsMax);
        Assert.Equal(0UL, metrics.OomKills);
    }
}

[RequiresRoot]
public sealed class RealCgroupManagerContract : CgroupManagerContract
{
    private readonly ThrowawayCgroups _cgroups = new("cgc");

    protected override ICgroupManager Cgroups => _cgroups.Manager;

    protected override Task StartLikeRuncAsync(string handle)
    {
        _cgroups.MakeLikeRunc(handle);
        return Task.CompletedTask;
    }

    protected override Task DeleteLikeRuncAsync(string handle)
    {
        _cgroups.RemoveLikeRunc(handle);
        return Task.CompletedTask;
    }

    public override void Dispose() => _cgroups.Dispose();
}

public sealed class FakeCgroupManagerContract : CgroupManagerContract
{
    private readonly FakeOciRuntime _runtime = new(new CallLog());

    public FakeCgroupManagerContract() => Cgroups = new FakeCgroups(new CallLog(), _runtime);

    protected override ICgroupManager Cgroups { get; }

    protected override Task StartLikeRuncAsync(string handle) =>
        _runtime.RunAsync(new BundleSpec(handle, "/r", "/a", "/s", "/l", Cgroups.PathFor(handle), false, []), "/b", default);

    protected override async Task DeleteLikeRuncAsync(string handle)
    {
        await _runtime.KillAsync(handle, 9, false, default);
        await _runtime.DeleteAsync(handle, default);
    }

    public override void Dispose()
    {
    }
}

/// <summary>The OOM notifier contract: a kill in the container's cgroup calls back once; a disposed watch never again,
/// and disposing it does not end a later watch of the same container (a new incarnation's).</summary>
public abstract class OomNotifierContract : IDisposable
{
    protected abstract IOomNotifier Notifier { get; }

    /// <summary>The container's cgroup as runc makes it.</summary>
    protected abstract void Start(string handle);

    /// <summary>The kernel's OOM killer kills one process of the container.</summary>
    protected abstract void OomKill(string handle);

    public abstract void Dispose();

    private static void Settle(Func<int> calls, int expected)
    {
        Assert.True(SpinWait.SpinUntil(() => calls() >= expected, 10_000), $"{calls()} callbacks, expected {expected}");
        Thread.Sleep(1500); // a second callback for the same kill would come within this
        Assert.Equal(expected, calls());
    }

    [GatedFact]
    public void A_kill_calls_back_once_and_a_disposed_watch_never_again()
    {
        Start("oom");
        var calls = 0;
        var watch = Notifier.Watch("oom", () => Interlocked.Increment(ref calls));
        OomKill("oom");
        Settle(() => Volatile.Read(ref calls), 1);
        watch.Dispose();
        watch.Dispose(); // idempotent
        OomKill("oom");
        Thread.Sleep(1500);
        Assert.Equal(1, Volatile.Read(ref calls));
    }

    [GatedFact]
    public void Disposing_an_earlier_watch_does_not_end_a_later_one_of_the_same_container()
    {
        Start("again");
        int first = 0, second = 0;
        var earlier = Notifier.Watch("again", () => Interlocked.Increment(ref first));
        using var later = Notifier.Watch("again", () => Interlocked.Increment(ref second));
        earlier.Dispose();
        OomKill("again");
        Settle(() => Volatile.Read(ref second), 1);
        Assert.Equal(0, Volatile.Read(ref first));
    }
}

[RequiresRoot]
public sealed class RealOomNotifierContract : OomNotifierContract
{
    private readonly ThrowawayCgroups _cgroups = new("oomc");

    public RealOomNotifierContract() => Notifier = OomNotifier.Create(_cgroups.Parent);

    protected override IOomNotifier Notifier { get; }

    protected override void Start(string handle) => _cgroups.MakeLikeRunc(handle);

    protected override void OomKill(string handle) => _cgroups.OomKill(handle);

    public override void Dispose() => _cgroups.Dispose();
}

public sealed class FakeOomNotifierContract : OomNotifierContract
{
    private readonly FakeOomNotifier _oom = new();

    protected override IOomNotifier Notifier => _oom;

    protected override void Start(string handle)
    {
    }

    protected override void OomKill(string handle) => _oom.Kill(handle);

    public override void Dispose()
    {
    }
}

/// <summary>The host's figures: memory and disk are there, a port something listens on is in use (and free again when
/// it stops), a path is resolved through its symlinks and a missing one is null. No root needed, real or fake.</summary>
public abstract class HostResourcesContract : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("host");

    protected abstract IHostResources Host { get; }

    /// <summary>Something on the host listens on the port until disposed.</summary>
    protected abstract IDisposable Listen(int port);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [GatedFact]
    public void Memory_and_disk_are_there()
    {
        Assert.True(Host.MemoryBytes() > 0);
        Assert.True(Host.DiskBytes(_dir) > 0);
    }

    [GatedFact]
    public void A_port_is_in_use_while_something_listens_on_it()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Any, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        Assert.False(Host.TcpPortInUse(port));
        using (Listen(port)) Assert.True(Host.TcpPortInUse(port));
        Assert.False(Host.TcpPortInUse(port));
    }

    [GatedFact]
    public void A_path_is_resolved_through_its_symlinks_and_a_missing_one_is_null()
    {
        var target = Directory.CreateDirectory(Path.Combine(_dir, "target")).FullName;
        File.CreateSymbolicLink(Path.Combine(_dir, "link"), target);
        Assert.Equal(target, Host.ResolvePath(Path.Combine(_dir, "link")));
        Assert.Equal(target, Host.ResolvePath(Path.Combine(_dir, "target", "..", "link")));
        Assert.Null(Host.ResolvePath(Path.Combine(_dir, "missing")));
        Assert.Null(Host.ResolvePath(Path.Combine(_dir, "link", "missing")));
    }
}

public sealed class RealHostResourcesContract : HostResourcesContract
{
    protected override IHostResources Host { get; } = new HostResources();

    protected override IDisposable Listen(int port)
    {
        var listener = new TcpListener(IPAddress.Any, port);
        listener.Start();
        return new Stop(listener.Stop);
    }

    private sealed class Stop(Action stop) : IDisposable
    {
        public void Dispose() => stop();
    }
}

public sealed class FakeHostResourcesContract : HostResourcesContract
{
    private readonly FakeHostResources _host = new();

    protected override IHostResources Host => _host;

    protected override IDisposable Listen(int port)
    {
        _host.BusyPorts.Add(port);
        return new Stop(() => _host.BusyPorts.Remove(port));
    }

    private sealed class Stop(Action stop) : IDisposable
    {
        public void Dispose() => stop();
    }
}
