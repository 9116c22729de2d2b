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
    public void V2_layout_is_one_tree_and_release_removes_the_leaf_and_the_empty_parent()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory pids");
        var m = CgroupManager.Create("garden-test-v2", _root);
        Assert.Equal("/garden-test-v2/c1", m.PathFor("c1"));
        Directory.CreateDirectory(Path.Combine(_root, "garden-test-v2", "c1"));
        Directory.CreateDirectory(Path.Combine(_root, "garden-test-v2", "c2"));
        Assert.True(m.Exists("c1"));
        m.Release("c1");
        Assert.False(m.Exists("c1"));
        Assert.True(Directory.Exists(Path.Combine(_root, "garden-test-v2")), "parent still holds c2");
        m.Release("c2");
        Assert.False(Directory.Exists(Path.Combine(_root, "garden-test-v2")));
        m.Release("c2"); // idempotent
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

    [Fact]
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
}
