using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Testing;

namespace Garden.Linux.Tests;

/// <summary>One real container (overlay root, runc, the published agent as init) in a /tmp/garden-test-* dir;
/// everything is released on dispose.</summary>
public sealed class RealContainer : IAsyncDisposable
{
    private static int _seq;
    public string Handle { get; }
    public string Dir { get; }
    public string Depot => Path.Combine(Dir, "depot");
    public string SocketPath => Path.Combine(Dir, "agent.sock");
    public IOciRuntime Runtime { get; } = new RuncRuntime();
    public IRootfsProvider Rootfs { get; } = new OverlayRootfs();
    public ICgroupManager Cgroups { get; }
    public IAgentClient Agent { get; }
    public string RootfsPath { get; private set; } = "";

    private RealContainer(string what)
    {
        Handle = $"garden-test-{what}-{Environment.ProcessId}-{Interlocked.Increment(ref _seq)}";
        Dir = TestPaths.NewTempDir(what);
        Cgroups = CgroupManager.Create($"garden-test-{Environment.ProcessId}");
        Agent = new AgentConnector().Connect(SocketPath);
    }

    public static async Task<RealContainer> StartAsync(string what, bool privileged = false)
    {
        var c = new RealContainer(what);
        try
        {
            Directory.CreateDirectory(c.Depot);
            c.RootfsPath = await c.Rootfs.CreateAsync(c.Handle, TestPaths.DefaultRootfs, c.Depot, null, default);
            await c.Runtime.RunAsync(c.Spec(privileged), Path.Combine(c.Dir, "bundle"), default);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await c.Agent.PingAsync(cts.Token);
            return c;
        }
        catch
        {
            await c.DisposeAsync();
            throw;
        }
    }

    public BundleSpec Spec(bool privileged = false) => new(Handle, RootfsPath, TestPaths.AgentBinary, SocketPath,
        Path.Combine(Dir, "agent.log"), Cgroups.PathFor(Handle), privileged, ["FROM_CONTAINER=yes"]);

    /// <summary>Every step runs even if an earlier one failed; the first failure is rethrown at the end.</summary>
    public async ValueTask DisposeAsync()
    {
        var errors = new List<Exception>();
        async Task Step(Func<Task> step)
        {
            try { await step(); } catch (Exception e) { errors.Add(e); }
        }
        await Step(() => Runtime.KillAsync(Handle, 9, false, default));
        await Step(() => Runtime.WaitStoppedAsync(Handle, TimeSpan.FromSeconds(10), default));
        await Step(() => Runtime.DeleteAsync(Handle, default));
        await Step(() => { Cgroups.Release(Handle); return Task.CompletedTask; });
        await Step(() => Rootfs.DestroyAsync(Handle, Depot, default));
        await Step(() => { Directory.Delete(Dir, recursive: true); return Task.CompletedTask; });
        if (errors.Count > 0) throw new AggregateException("releasing the test container", errors);
    }
}
