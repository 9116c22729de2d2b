using Garden.Linux.Cgroups;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The version split ends at the factory: v2 is tested against a fake cgroupfs in a temp dir, v1 both fake and real.</summary>
public sealed class CgroupManagerTests : IDisposable
{
    private readonly string _root = TestPaths.NewTempDir("cgroupfs");

    public void Dispose() => Directory.Delete(_root, true);

    [Fact]
    public void V2_layout_is_one_tree_with_the_agent_and_the_processes_in_leaves_and_release_removes_them_all()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids");
        var m = CgroupManager.Create("garden-test-v2", _root);
        // v2 lets only leaves hold processes: the agent (runc's init) in c1/init, the container's processes in c1/work.
        Assert.Equal("/garden-test-v2/c1/init", m.PathFor("c1"));
        Assert.Equal(Path.Combine(_root, "garden-test-v2", "c1", "work"), m.PrepareProcessCgroup("c1"));
        Assert.True(Directory.Exists(Path.Combine(_root, "garden-test-v2", "c1", "work")));
        foreach (var dir in new[] { _root, Path.Combine(_root, "garden-test-v2"), Path.Combine(_root, "garden-test-v2", "c1") })
            Assert.Contains("+pids", File.ReadAllText(Path.Combine(dir, "cgroup.subtree_control")));
        Directory.CreateDirectory(Path.Combine(_root, "garden-test-v2", "c1", "init"));
        Directory.CreateDirectory(Path.Combine(_root, "garden-test-v2", "c2"));
        Assert.True(m.Exists("c1"));
        // a fake cgroupfs holds plain files that a real one would not; a real rmdir removes a cgroup with its files
        File.Delete(Path.Combine(_root, "garden-test-v2", "c1", "cgroup.subtree_control"));
        m.Release("c1");
        Assert.False(m.Exists("c1"));
        Assert.True(Directory.Exists(Path.Combine(_root, "garden-test-v2")), "parent still holds c2");
        File.Delete(Path.Combine(_root, "garden-test-v2", "cgroup.subtree_control"));
        m.Release("c2");
        Assert.False(Directory.Exists(Path.Combine(_root, "garden-test-v2")));
        m.Release("c2"); // idempotent
    }

    [Fact]
    public void V1_processes_go_into_a_child_of_the_container_cgroup_in_the_pids_and_memory_hierarchies()
    {
        foreach (var c in new[] { "memory", "cpu", "pids" })
            Directory.CreateDirectory(Path.Combine(_root, c));
        var m = CgroupManager.Create("garden-test-v1", _root);
        Assert.Equal("/garden-test-v1/h", m.PathFor("h"));
        Assert.Equal(Path.Combine(_root, "pids", "garden-test-v1", "h", "work"), m.PrepareProcessCgroup("h"));
        // the memory limit is on the processes' cgroup too: the agent moves each process into both
        Assert.Equal(Path.Combine(_root, "memory", "garden-test-v1", "h", "work"), m.MemoryProcessCgroup("h"));
        Assert.True(Directory.Exists(Path.Combine(_root, "memory", "garden-test-v1", "h", "work")));
        Assert.False(Directory.Exists(Path.Combine(_root, "cpu", "garden-test-v1", "h", "work")));
        Assert.Null(m.MemoryProcessCgroup("other")); // never prepared: nothing for the agent to join
        m.Release("h");
        foreach (var c in new[] { "memory", "cpu", "pids" })
            Assert.False(Directory.Exists(Path.Combine(_root, c, "garden-test-v1")));
    }

    /// <summary>Writes the files a kernel would give a new memory cgroup (v1 or v2) into a fake one.</summary>
    private static void FakeMemoryFiles(string dir, bool v2)
    {
        Directory.CreateDirectory(dir);
        if (v2)
        {
            File.WriteAllText(Path.Combine(dir, "memory.max"), "max\n");
            File.WriteAllText(Path.Combine(dir, "memory.swap.max"), "max\n");
            File.WriteAllText(Path.Combine(dir, "memory.current"), "0\n");
            File.WriteAllText(Path.Combine(dir, "memory.stat"), "anon 0\n");
            File.WriteAllText(Path.Combine(dir, "memory.events"), "oom 0\noom_kill 0\n");
        }
        else
        {
            foreach (var f in new[] { "memory.limit_in_bytes", "memory.memsw.limit_in_bytes" })
                File.WriteAllText(Path.Combine(dir, f), "9223372036854771712\n");
            File.WriteAllText(Path.Combine(dir, "memory.usage_in_bytes"), "0\n");
            File.WriteAllText(Path.Combine(dir, "memory.stat"), "rss 0\n");
            File.WriteAllText(Path.Combine(dir, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_memory_limit_asked_is_on_work_and_the_container_gets_it_plus_the_agent_allowance(bool v2)
    {
        string container;
        ICgroupManager m;
        if (v2)
        {
            File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "memory pids");
            m = CgroupManager.Create("garden-test-v2", _root, agentMemoryAllowance: 16 << 20);
            container = Path.Combine(_root, "garden-test-v2", "c1");
        }
        else
        {
            foreach (var c in new[] { "memory", "pids" }) Directory.CreateDirectory(Path.Combine(_root, c));
            m = CgroupManager.Create("garden-test-v1", _root, agentMemoryAllowance: 16 << 20);
            container = Path.Combine(_root, "memory", "garden-test-v1", "c1");
        }
        var (limit, memsw) = v2 ? ("memory.max", "memory.swap.max") : ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes");
        FakeMemoryFiles(container, v2);
        var pids = v2 ? container : Path.Combine(_root, "pids", "garden-test-v1", "c1");
        Directory.CreateDirectory(pids);
        File.WriteAllText(Path.Combine(pids, "pids.max"), "max\n");
        // a container of an earlier build: no memory limit below its cgroup, so the limit stays on the container's own
        m.Apply("c1", new ResourceLimits(MemoryBytes: 64 << 20));
        Assert.Equal($"{64 << 20}", File.ReadAllText(Path.Combine(container, limit)).Trim());
        Assert.Equal(64UL << 20, m.Read("c1").MemoryBytes);

        m.PrepareProcessCgroup("c1");
        if (v2) Assert.Contains("+memory", File.ReadAllText(Path.Combine(container, "cgroup.subtree_control")));
        var work = Path.Combine(container, "work");
        Assert.True(Directory.Exists(work));
        File.WriteAllText(Path.Combine(pids, "work", "pids.max"), "max\n");
        File.WriteAllText(Path.Combine(pids, "work", "pids.current"), "0\n");
        FakeMemoryFiles(work, v2); // what the kernel shows in it once memory is enabled (v2) / at mkdir (v1)
        File.WriteAllText(Path.Combine(work, v2 ? "memory.current" : "memory.usage_in_bytes"), "5242880\n");
        File.WriteAllText(Path.Combine(work, v2 ? "memory.events" : "memory.oom_control"), "oom 2\noom_kill 2\n");
        File.WriteAllText(Path.Combine(container, v2 ? "memory.current" : "memory.usage_in_bytes"), "12582912\n");

        m.Apply("c1", new ResourceLimits(MemoryBytes: 64 << 20));
        Assert.Equal($"{64 << 20}", File.ReadAllText(Path.Combine(work, limit)).Trim());
        Assert.Equal($"{80 << 20}", File.ReadAllText(Path.Combine(container, limit)).Trim());
        Assert.Equal(v2 ? "0" : $"{64 << 20}", File.ReadAllText(Path.Combine(work, memsw)).Trim());
        Assert.Equal(v2 ? "0" : $"{80 << 20}", File.ReadAllText(Path.Combine(container, memsw)).Trim());
        Assert.Equal(64UL << 20, m.Read("c1").MemoryBytes);
        var metrics = m.Metrics("c1");
        Assert.Equal(64UL << 20, metrics.MemoryLimitBytes); // the processes': usage against the limit asked
        Assert.Equal(5UL << 20, metrics.MemoryUsageBytes);
        Assert.Equal(2UL, metrics.OomKills);

        // live changes move both, up and down
        m.Apply("c1", new ResourceLimits(MemoryBytes: 256 << 20));
        Assert.Equal($"{256 << 20}", File.ReadAllText(Path.Combine(work, limit)).Trim());
        Assert.Equal($"{272 << 20}", File.ReadAllText(Path.Combine(container, limit)).Trim());
        m.Apply("c1", new ResourceLimits(MemoryBytes: 16 << 20));
        Assert.Equal($"{16 << 20}", File.ReadAllText(Path.Combine(work, limit)).Trim());
        Assert.Equal($"{32 << 20}", File.ReadAllText(Path.Combine(container, limit)).Trim());
        if (!v2) Assert.Equal($"{32 << 20}", File.ReadAllText(Path.Combine(container, memsw)).Trim());
    }

    [Fact]
    public void V1_layout_releases_in_every_controller_hierarchy()
    {
        foreach (var c in new[] { "memory", "cpu", "pids" })
            Directory.CreateDirectory(Path.Combine(_root, c, "garden-test-v1", "h"));
        var m = CgroupManager.Create("garden-test-v1", _root);
        Assert.True(m.Exists("h"));
        m.Release("h");
        foreach (var c in new[] { "memory", "cpu", "pids" })
            Assert.False(Directory.Exists(Path.Combine(_root, c, "garden-test-v1")));
    }

    [GatedFact(Needs = Needs.Root | Needs.CgroupV1)] // the host's cgroupfs, v1's layout
    public void Real_v1_host_release_removes_a_real_cgroup()
    {
        var parent = $"garden-test-cg-{Environment.ProcessId}";
        var m = CgroupManager.Create(parent);
        var dir = Path.Combine("/sys/fs/cgroup/memory", parent, "h");
        Directory.CreateDirectory(dir);
        Assert.True(m.Exists("h"));
        m.Release("h");
        Assert.False(Directory.Exists(Path.Combine("/sys/fs/cgroup/memory", parent)));
    }

    private static uint Owner(string path) =>
        uint.Parse(Garden.Linux.Process.Command.RunAsync("/usr/bin/stat", ["-c", "%u", path]).Result.Stdout.Trim());

    [RootFact] // chown needs CAP_CHOWN
    public void V2_delegation_gives_container_root_the_cgroup_procs_of_work_and_of_the_common_ancestor_only()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids");
        var m = CgroupManager.Create("garden-test-v2", _root);
        // what the kernel makes with every cgroup
        var c1 = Path.Combine(_root, "garden-test-v2", "c1");
        foreach (var dir in new[] { c1, Path.Combine(c1, "work") })
        {
            Directory.CreateDirectory(dir);
            foreach (var f in new[] { "cgroup.procs", "pids.max" }) File.WriteAllText(Path.Combine(dir, f), "");
        }
        var work = m.PrepareProcessCgroup("c1", new CgroupOwner(4294967294, 4294967294))!;
        // moving a process from c1/init to c1/work takes write access to both work's and c1's cgroup.procs (v2's rule)
        Assert.Equal(4294967294u, Owner(Path.Combine(work, "cgroup.procs")));
        Assert.Equal(4294967294u, Owner(Path.Combine(c1, "cgroup.procs")));
        Assert.Equal(0u, Owner(Path.Combine(work, "pids.max")));
        Assert.Equal(0u, Owner(work));
        Assert.Equal(0u, Owner(Path.Combine(c1, "pids.max")));
    }

    [GatedFact(Needs = Needs.Root | Needs.CgroupV1)] // the host's cgroupfs, v1's layout
    public void Real_v1_delegation_gives_container_root_the_work_cgroups_procs_and_nothing_else()
    {
        var parent = $"garden-test-cgd-{Environment.ProcessId}";
        var m = CgroupManager.Create(parent);
        try
        {
            var work = m.PrepareProcessCgroup("h", new CgroupOwner(4294967294, 4294967294))!;
            Assert.Equal(Path.Combine("/sys/fs/cgroup/pids", parent, "h", "work"), work);
            Assert.Equal(4294967294u, Owner(Path.Combine(work, "cgroup.procs")));
            Assert.Equal(0u, Owner(Path.Combine(work, "pids.max")));
            Assert.Equal(0u, Owner(work));
            Assert.Equal(0u, Owner(Path.Combine("/sys/fs/cgroup/pids", parent, "h", "cgroup.procs")));
            // without a user namespace nothing is handed over
            var plain = m.PrepareProcessCgroup("p")!;
            Assert.Equal(0u, Owner(Path.Combine(plain, "cgroup.procs")));
        }
        finally
        {
            m.Release("h");
            m.Release("p");
        }
    }
}
