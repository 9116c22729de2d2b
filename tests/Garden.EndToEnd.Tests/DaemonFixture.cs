using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>One real gardend per test class (classes run in parallel, each against its own daemon).</summary>
public sealed class DaemonFixture : IAsyncLifetime
{
    private Gardend? _daemon;

    public Gardend Daemon => _daemon ?? throw new InvalidOperationException(Gate.Unmet(Needs.Root | Needs.Install) ?? "gardend not started");

    /// <summary>Starts gardend; on a machine without root or an install the tests are skipped ([InstallFact]): nothing starts.</summary>
    public async Task InitializeAsync()
    {
        if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return;
        _daemon = new Gardend();
        await _daemon.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_daemon is null) return;
        // Destroy whatever a failed test left, so the host is clean even then.
        var list = await Daemon.CliAsync("list");
        foreach (var h in list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            await Daemon.CliAsync("destroy", h);
        await Daemon.DisposeAsync();
    }
}

public static class Host
{
    /// <summary>Everything of ours on the host that names this handle: mounts, runc state, cgroups, depot. A Destroy answers
    /// once nothing runs in the container and its rootfs, depot and network go right after: unless
    /// <paramref name="settle"/> is false, what is found is looked for again for up to 5 s until it is gone.</summary>
    public static List<string> Leftovers(Gardend d, string handle, bool settle = true)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            var found = Found(d, handle);
            if (!settle || found.Count == 0 || DateTime.UtcNow >= deadline) return found;
            Thread.Sleep(50);
        }
    }

    /// <summary>Waits (up to 10 s) until gardend's log says the release of a destroyed container ended: what it held of the
    /// pools (its address, host ports, user id range) is free again from then on (a Destroy answers before).</summary>
    public static async Task ReleaseFinished(Gardend d, string handle)
    {
        var line = $"[container {handle}] release finished";
        for (var waited = 0; !d.Log.Contains(line, StringComparison.Ordinal); waited += 50)
        {
            if (waited >= 10_000) throw new TimeoutException($"no '{line}' in gardend's log after 10 s:\n{d.Log}");
            await Task.Delay(50);
        }
    }

    private static List<string> Found(Gardend d, string handle)
    {
        var found = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            if (line.Contains($"/{handle}/")) found.Add($"mount: {line}");
        if (Directory.Exists($"/run/runc/{handle}")) found.Add($"runc state /run/runc/{handle}");
        // the container's cgroup in any hierarchy (v1) or in the tree (v2), as the product lays them out
        found.AddRange(HostCgroups.Existing(d.CgroupParent, handle).Select(dir => $"cgroup {dir}"));
        if (Directory.Exists(Path.Combine(d.StateDir, "depot", handle))) found.Add("depot dir");
        return found;
    }

    /// <summary>User namespace holders (`garden-agent ns-holder`) whose gardend is gone: a holder lives only while its
    /// gardend creates a container or keeps it as a spare, and exits when gardend closes its end of their socket or dies.</summary>
    public static List<string> OrphanedHolders()
    {
        // A holder of a gardend that has just exited (or is exiting: its command line reads empty then) ends once it reads
        // the end of its socket, a moment later: only one still there after a few seconds is left behind.
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var found = HoldersWithoutGardend();
            if (found.Count == 0 || waited.Elapsed > TimeSpan.FromSeconds(5)) return found;
            Thread.Sleep(50);
        }
    }

    private static List<string> HoldersWithoutGardend()
    {
        var found = new List<string>();
        foreach (var dir in Directory.GetDirectories("/proc").Where(d => int.TryParse(Path.GetFileName(d), out _)))
        {
            try
            {
                var args = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (args.Length < 2 || !args[0].EndsWith("garden-agent", StringComparison.Ordinal) || args[1] != "ns-holder") continue;
                var ppid = File.ReadLines(Path.Combine(dir, "status")).Single(l => l.StartsWith("PPid:"))[5..].Trim();
                var parent = File.ReadAllText($"/proc/{ppid}/cmdline");
                // a live gardend's (a Create's, or a spare), or a test process's of its own (the Linux tests make holders
                // in-process, beside these): not orphaned
                if (!parent.Contains("gardend", StringComparison.Ordinal) && !parent.Contains(".Tests.", StringComparison.Ordinal))
                    found.Add($"holder {Path.GetFileName(dir)} (parent {ppid}: {parent.Replace('\0', ' ')[..Math.Min(parent.Length, 80)]})");
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }
        return found;
    }
}
