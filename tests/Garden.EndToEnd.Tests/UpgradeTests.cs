using System.Text.Json;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>A live upgrade: gardend built from an earlier commit that already had the journal creates containers and
/// processes, is killed, and the current build takes over the same state dir.
/// The pinned commit moves forward only deliberately, when the journal format changes incompatibly (which should be never).</summary>
public sealed class UpgradeTests
{
    /// <summary>The first commit with the journal (Akka.Persistence.Sql on SQLite, protobuf events).</summary>
    public const string PinnedCommit = "eeb2298f97bacd23873c536134e26265499c76d6";

    private static async Task<(string Gardend, string Agent)> BuildOldAsync()
    {
        var root = TestPaths.RepoRoot;
        var commit = (await Command.RunAsync("/usr/bin/git", ["-C", root, "rev-parse", "--verify", "--quiet", PinnedCommit + "^{commit}"])).Stdout.Trim();
        Assert.True(commit.Length == 40,
            $"the upgrade test needs commit {PinnedCommit} in {root} (a shallow clone lacks it: git fetch --unshallow)");
        var cache = Path.Combine(root, "out", "upgrade", commit);
        var gardend = Path.Combine(cache, "gardend", "gardend.dll");
        var agent = Path.Combine(cache, "bin", "garden-agent");
        if (File.Exists(gardend) && File.Exists(agent)) return (gardend, agent);

        var src = Path.Combine(cache, "src");
        Directory.CreateDirectory(src);
        var archive = await Command.RunAsync("/bin/sh", ["-c", $"git -C '{root}' archive {commit} | tar -x -C '{src}'"]);
        Assert.True(archive.Succeeded, archive.Stderr);
        foreach (var (project, output) in new[] { ("src/Host/Garden.Host.csproj", "gardend"), ("src/Agent/Garden.Agent.csproj", "bin") })
        {
            var publish = await Command.RunAsync("/bin/sh", ["-c",
                $"cd '{src}' && dotnet publish {project} -c Release -o '{Path.Combine(cache, output)}' --nologo -v:q 2>&1"]);
            Assert.True(publish.Succeeded, $"building {project} at {commit} failed:\n{publish.Stdout}");
        }
        return (gardend, agent);
    }

    [InstallFact]
    public async Task The_current_build_takes_over_containers_and_processes_of_the_pinned_earlier_build()
    {
        var (oldGardend, oldAgent) = await BuildOldAsync();
        var d = new Gardend { DllPath = oldGardend, AgentPath = oldAgent };
        d.Configure("");
        var h = $"upgrade-{Guid.NewGuid():N}"[..16];
        try
        {
            await d.StartAsync();
            Assert.Equal(0, (await d.CliAsync("create", "--handle", h, "--property", "release=old")).ExitCode);
            await d.CliAsync("run", h, "--detach", "--id", "lines", "--", "sh", "-c", "i=1; while [ $i -le 20 ]; do echo line $i; i=$((i+1)); sleep 0.1; done; exit 6");
            await d.CliAsync("run", h, "--detach", "--id", "quick", "--", "sh", "-c", "echo bye; exit 4");
            await d.CliAsync("run", h, "--detach", "--id", "sleeper", "--", "sleep", "1000");
            await Task.Delay(500);
            await d.StopAsync(kill: true);

            d.DllPath = null;
            d.AgentPath = null;
            d.Configure(""); // new containers get the new agent; the old one keeps its own
            await d.StartAsync();

            var info = JsonDocument.Parse((await d.CliAsync("--json", "info", h)).Stdout).RootElement;
            Assert.Equal("active", info.GetProperty("state").GetString());
            Assert.Equal("old", info.GetProperty("properties").GetProperty("release").GetString());
            Assert.Contains("sleeper", info.GetProperty("processIds").EnumerateArray().Select(e => e.GetString()));
            // made before user namespaces: it keeps running as it was made (host root), and Info says so
            Assert.False(info.TryGetProperty("userNamespace", out _));
            Assert.Contains("user ns:    none (made by a build before user namespaces", (await d.CliAsync("info", h)).Stdout);
            Assert.Equal("0 0 4294967295", string.Join(' ', (await d.CliAsync("run", h, "--", "cat", "/proc/self/uid_map")).Stdout
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim());

            var lines = await d.CliAsync("attach", h, "lines", "--from", "0");
            Assert.Equal(6, lines.ExitCode);
            Assert.Equal(Enumerable.Range(1, 20).Select(i => $"line {i}"), lines.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            var quick = await d.CliAsync("attach", h, "quick");
            Assert.Equal((4, "bye\n"), (quick.ExitCode, quick.Stdout));
            Assert.Equal(0, (await d.CliAsync("signal", h, "sleeper", "KILL")).ExitCode);
            Assert.Equal(137, (await d.CliAsync("attach", h, "sleeper")).ExitCode);
            Assert.Equal("new daemon\n", (await d.CliAsync("run", h, "--", "echo", "new daemon")).Stdout);

            // made before the processes' cgroup held the memory limit (its agent shares the container's cgroup with them):
            // a live limit lands on the container's own cgroup, is read back from there, and its OOM kills are seen
            var limited = await d.CliAsync("limit", h, "--memory", "48M");
            Assert.True(limited.ExitCode == 0, limited.ToString());
            Assert.Equal($"{48 << 20}", File.ReadAllText(HostCgroups.Dir("memory", d.CgroupParent, h, HostCgroups.MemoryLimitFile)).Trim());
            Assert.False(File.Exists(HostCgroups.Dir("memory", d.CgroupParent, h, "work", HostCgroups.MemoryLimitFile)));
            var metrics = JsonDocument.Parse((await d.CliAsync("--json", "metrics", h)).Stdout).RootElement;
            Assert.Equal($"{48 << 20}", metrics.GetProperty("memoryLimitBytes").ToString());
            Assert.Equal(137, (await d.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1")).ExitCode);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            string events;
            do events = (await d.CliAsync("info", h)).Stdout;
            while (!events.Contains("out of memory") && DateTime.UtcNow < deadline && await Task.Delay(100).ContinueWith(_ => true));
            Assert.Contains("out of memory", events);
            Assert.Equal("still here\n", (await d.CliAsync("run", h, "--", "echo", "still here")).Stdout);

            var fresh = $"{h}-new";
            Assert.Equal(0, (await d.CliAsync("create", "--handle", fresh)).ExitCode);
            Assert.StartsWith("0 4294967294 1", string.Join(' ', (await d.CliAsync("run", fresh, "--", "cat", "/proc/self/uid_map")).Stdout
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)).Trim());
            Assert.Equal(0, (await d.CliAsync("destroy", fresh)).ExitCode);
            Assert.Equal(0, (await d.CliAsync("destroy", h)).ExitCode);
            Assert.Empty(Host.Leftovers(d, h));
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.DisposeAsync();
        }
    }
}
