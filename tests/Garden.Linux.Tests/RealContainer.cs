using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;
using Garden.Testing;

namespace Garden.Linux.Tests;

/// <summary>One real container (overlay root, runc, the published agent as init) in a /tmp/garden-test-* dir;
/// everything is released on dispose. Unprivileged unless asked: a user namespace with <see cref="Mapping"/> (Garden's
/// by default), made as gardend makes it (the agent binary's ns-holder, an idmapped base, the delegated work cgroup).</summary>
public sealed class RealContainer : IAsyncDisposable
{
    private static int _seq;
    public string Handle { get; }
    public string Dir { get; }
    public string Depot => Path.Combine(Dir, "depot");
    public RootfsPaths Paths => new(Path.Combine(Dir, "mounts", Handle), Depot);
    public string SocketPath => Path.Combine(Dir, "agent.sock");
    public IOciRuntime Runtime { get; }

    /// <summary>The seccomp program gardend compiles once, for every container of this test process whose agent installs it
    /// (gardend's way); <see cref="StartAsync"/> with runcSeccomp has runc compile the profile instead.</summary>
    public static readonly Lazy<AgentSeccompFilter> Seccomp = new(AgentSeccompFilter.Compile);
    public IRootfsProvider Rootfs { get; } = new OverlayRootfs();
    public ICgroupManager Cgroups { get; }
    public IAgentClient Agent { get; }
    public string RootfsPath { get; private set; } = "";
    public bool Privileged { get; private set; }

    /// <summary>The container's user namespace mapping; null when privileged.</summary>
    public IdMapping? Mapping { get; private set; }

    /// <summary>The pid of the container's init (the agent) on the host.</summary>
    public int InitPid { get; private set; }

    private RealContainer(string what, bool runcSeccomp = false, AgentSeccompFilter? seccomp = null)
    {
        Runtime = new RuncRuntime(agentSeccomp: runcSeccomp ? null : seccomp ?? Seccomp.Value);
        Handle = $"garden-test-{what}-{Environment.ProcessId}-{Interlocked.Increment(ref _seq)}";
        Dir = TestPaths.NewTempDir(what);
        Cgroups = CgroupManager.Create($"garden-test-{Environment.ProcessId}");
        Agent = new AgentConnector().Connect(SocketPath);
    }

    /// <param name="seccomp">the program this container's agent is handed instead of gardend's</param>
    /// <param name="ping">false: return once runc started the agent, without waiting for it to answer</param>
    public static async Task<RealContainer> StartAsync(string what, bool privileged = false, IdMapping? mapping = null, bool runcSeccomp = false,
        AgentSeccompFilter? seccomp = null, bool ping = true)
    {
        var c = new RealContainer(what, runcSeccomp, seccomp) { Privileged = privileged, Mapping = privileged ? null : mapping ?? IdMapping.Garden };
        try
        {
            Directory.CreateDirectory(c.Depot);
            // runc finds the root as container root: the dirs above the mount dir must be traversable (0711).
            OverlayRootfs.PrepareMountDir(Path.Combine(TestPaths.Traversable(c.Dir), "mounts"));
            IUserNamespaceHolder? userns = c.Mapping is null ? null
                : await new HolderUserNamespaces(TestPaths.AgentBinary).CreateAsync(c.Handle, c.Mapping, default);
            await using (userns)
            {
                var root = userns is null ? null : new UserNamespaceRoot(userns.UserNamespacePath, c.Mapping!.RootUid, c.Mapping.RootGid);
                c.RootfsPath = await c.Rootfs.CreateAsync(c.Handle, TestPaths.DefaultRootfs, c.Paths, null, root, default);
                var work = c.Cgroups.PrepareProcessCgroup(c.Handle, root is null ? null : new CgroupOwner(root.Uid, root.Gid));
                await c.Runtime.RunAsync(c.Spec(work, userns?.UserNamespacePath), Path.Combine(c.Dir, "bundle"), default);
            }
            if (!ping) return c;
            c.InitPid = (await c.Runtime.StateAsync(c.Handle, default))!.Pid;
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

    /// <summary>The bundle of this container (with a user namespace: joined at <paramref name="usernsPath"/>, which
    /// exists only while it is held).</summary>
    public BundleSpec Spec(string? processCgroup = null, string? usernsPath = null) => new(Handle, RootfsPath, TestPaths.AgentBinary, SocketPath,
        Path.Combine(Dir, "agent.log"), Cgroups.PathFor(Handle), Privileged, ["FROM_CONTAINER=yes"], processCgroup,
        UserNamespace: usernsPath is null || Mapping is null ? null : new BundleUserNamespace(usernsPath, Mapping),
        MemoryCgroupDir: processCgroup is null ? null : Cgroups.MemoryProcessCgroup(Handle));

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
        await Step(() => Rootfs.DestroyAsync(Handle, Paths, default));
        await Step(() => { Directory.Delete(Dir, recursive: true); return Task.CompletedTask; });
        if (errors.Count > 0) throw new AggregateException("releasing the test container", errors);
    }
}
