using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>One real gardend per test class (classes run in parallel, each against its own daemon).</summary>
public sealed class DaemonFixture : IAsyncLifetime
{
    public Gardend Daemon { get; } = new();

    public Task InitializeAsync() => Daemon.StartAsync();

    public async Task DisposeAsync()
    {
        // Destroy whatever a failed test left, so the host is clean even then.
        var list = await Daemon.CliAsync("list");
        foreach (var h in list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            await Daemon.CliAsync("destroy", h);
        await Daemon.DisposeAsync();
    }
}

public static class Host
{
    /// <summary>Everything of ours on the host that names this handle: mounts, runc state, cgroups, depot.</summary>
    public static List<string> Leftovers(Gardend d, string handle)
    {
        var found = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            if (line.Contains($"/{handle}/")) found.Add($"mount: {line}");
        if (Directory.Exists($"/run/runc/{handle}")) found.Add($"runc state /run/runc/{handle}");
        foreach (var ctrl in new[] { "memory", "pids", "cpu", "devices", "freezer" })
            if (Directory.Exists($"/sys/fs/cgroup/{ctrl}/{d.CgroupParent}/{handle}")) found.Add($"cgroup {ctrl}/{d.CgroupParent}/{handle}");
        if (Directory.Exists(Path.Combine(d.StateDir, "depot", handle))) found.Add("depot dir");
        return found;
    }
}
