using System.Text.Json;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>Resource limits on the real kernel (cgroup v1 here), driven through the CLI.</summary>
public sealed class LimitsTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<string> Create(string prefix, params string[] flags)
    {
        var h = Unique(prefix);
        var r = await D.CliAsync(["create", "--handle", h, .. flags]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    private async Task<JsonElement> Json(params string[] args)
    {
        var r = await D.CliAsync(["--json", .. args]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    private static ulong U(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) ? ulong.Parse(v.ToString()) : 0;

    private static bool HasCapSysResource()
    {
        var eff = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:"))["CapEff:".Length..].Trim();
        return (Convert.ToUInt64(eff, 16) & (1UL << 24)) != 0;
    }

    private static List<string> LoopDevicesBackedBy(string dir) =>
        Directory.GetDirectories("/sys/block", "loop*")
            .Select(d => Path.Combine(d, "loop", "backing_file"))
            .Where(File.Exists)
            .Select(f => File.ReadAllText(f).Trim())
            .Where(b => b.StartsWith(dir, StringComparison.Ordinal))
            .ToList();

    [InstallFact]
    public async Task A_memory_hog_is_oom_killed_the_event_appears_and_the_container_keeps_serving()
    {
        var h = await Create("oom", "--memory", "32M");
        try
        {
            var hog = await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1");
            Assert.Equal(137, hog.ExitCode); // SIGKILL from the OOM killer
            var deadline = DateTime.UtcNow.AddSeconds(10);
            JsonElement info;
            do info = await Json("info", h);
            while (!info.GetProperty("events").EnumerateArray().Any(e => e.GetString() == "out of memory") && DateTime.UtcNow < deadline
                   && await Task.Delay(100).ContinueWith(_ => true));
            Assert.Contains("out of memory", info.GetProperty("events").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal("active", info.GetProperty("state").GetString());
            Assert.True(U(await Json("metrics", h), "oomKills") >= 1);
            Assert.Equal("still here\n", (await D.CliAsync("run", h, "--", "echo", "still here")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>GATS's "provides /dev/shm as tmpfs": under a 64 MiB limit 58 MiB in /dev/shm (tmpfs pages, charged to the
    /// cgroup but in no process's RSS) fit beside the processes, 65 MiB do not. With the agent inside the limited cgroup,
    /// the OOM killer found no process bigger than the agent (about 6 MiB) and killed it, and the container broke.</summary>
    [InstallFact]
    public async Task A_64_MiB_memory_limit_holds_58_MiB_in_dev_shm_not_65_and_the_container_survives()
    {
        var h = await Create("shm64", "--memory", "64M");
        try
        {
            var fits = await D.CliAsync("run", h, "--", "dd", "if=/dev/urandom", "of=/dev/shm/almost-too-big", "bs=1M", "count=58");
            Assert.True(fits.ExitCode == 0, fits.ToString());
            Assert.Equal("still here\n", (await D.CliAsync("run", h, "--", "echo", "still here")).Stdout);
            var tooBig = await D.CliAsync("run", h, "--", "sh", "-c",
                "rm /dev/shm/almost-too-big; dd if=/dev/urandom of=/dev/shm/too-big bs=1M count=65");
            Assert.NotEqual(0, tooBig.ExitCode);
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "rm", "-f", "/dev/shm/too-big")).ExitCode);
            Assert.Equal("still here\n", (await D.CliAsync("run", h, "--", "echo", "still here")).Stdout);
            var info = await Json("info", h);
            Assert.Equal("active", info.GetProperty("state").GetString());
            Assert.Equal(64UL << 20, U(info.GetProperty("limits"), "memoryBytes"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>What the memory sits in while held in tmpfs makes no process big: the OOM killer must still pick a process
    /// of the container, not its agent, however often it is pushed there; the agent stays PID 1 with the same pid on the
    /// host, and the kills are counted in metrics.</summary>
    [InstallFact]
    public async Task Filling_the_limit_from_tmpfs_kills_a_process_never_the_agent_and_oom_kills_count_it()
    {
        var h = await Create("shmoom", "--memory", "32M");
        try
        {
            var agentBefore = AgentHostPid(h);
            // 30 MiB in tmpfs stay charged; then a hog asks for more than is left: it is the victim (exit 137)
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/shm/held", "bs=1M", "count=30")).ExitCode);
            var hog = await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=16M", "count=1");
            Assert.Equal(137, hog.ExitCode);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (U(await Json("metrics", h), "oomKills") < 1 && DateTime.UtcNow < deadline) await Task.Delay(100);
            Assert.True(U(await Json("metrics", h), "oomKills") >= 1);
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "rm", "/dev/shm/held")).ExitCode);
            Assert.Equal("still here\n", (await D.CliAsync("run", h, "--", "echo", "still here")).Stdout);
            Assert.Equal(agentBefore, AgentHostPid(h));
            Assert.Equal("active", (await Json("info", h)).GetProperty("state").GetString());
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>The split as the kernel holds it: a process runs in the container's work cgroup of every hierarchy (the
    /// memory limit asked is there), with oom_score_adj raised above the agent's so the agent is the last victim.</summary>
    [InstallFact]
    public async Task Processes_run_under_the_limit_asked_in_their_own_cgroup_and_are_likelier_oom_victims_than_the_agent()
    {
        var h = await Create("memsplit", "--memory", "48M");
        try
        {
            var r = await D.CliAsync("run", h, "--", "sh", "-c", "cat /proc/self/oom_score_adj; grep -E ':(memory|pids):' /proc/self/cgroup");
            Assert.True(r.ExitCode == 0, r.ToString());
            var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal("500", lines[0]);
            Assert.Contains(lines, l => l.Contains(":memory:") && l.EndsWith("/work", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains(":pids:") && l.EndsWith("/work", StringComparison.Ordinal));
            Assert.NotEqual("500", File.ReadAllText($"/proc/{AgentHostPid(h)}/oom_score_adj").Trim());
            Assert.Equal($"{48 << 20}", File.ReadAllText(HostCgroups.Dir("memory", D.CgroupParent, h, "work", HostCgroups.MemoryLimitFile)).Trim());
            Assert.Equal($"{(48 + 32) << 20}", File.ReadAllText(HostCgroups.Dir("memory", D.CgroupParent, h, HostCgroups.MemoryLimitFile)).Trim());
            Assert.Equal(48UL << 20, U(await Json("metrics", h), "memoryLimitBytes"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>The agent's pid on the host (runc's pid file in the container's bundle), which must be in the container's
    /// memory cgroup outside work. (Not "the one process there": the agent's spawner starts there too and moves into work
    /// a few milliseconds later, possibly after a Create returned.)</summary>
    private string AgentHostPid(string h)
    {
        var pid = File.ReadAllText(Path.Combine(D.StateDir, "depot", h, "bundle", "init.pid")).Trim();
        Assert.Contains(pid, File.ReadAllLines(HostCgroups.Dir("memory", D.CgroupParent, h, "cgroup.procs")));
        return pid;
    }

    [InstallFact]
    public async Task A_fork_bomb_stops_at_the_pids_limit()
    {
        var h = await Create("pids", "--pids", "20");
        try
        {
            var bomb = await D.CliAsync("run", h, "--", "sh", "-c", "i=0; while [ $i -lt 60 ]; do sleep 30 & i=$((i+1)); done 2>&1 | head -1; echo forked");
            Assert.Contains("fork", bomb.Stdout + bomb.Stderr, StringComparison.OrdinalIgnoreCase);
            var m = await Json("metrics", h);
            Assert.True(U(m, "pidsCurrent") <= 21, m.ToString()); // the limit's 20 and the agent, which is outside it
            Assert.Equal(20ul, U(m, "pidsMax"));

            // The agent is outside the limit: it still answers, and refuses a new process clearly while a bomb holds it.
            CliResult refused;
            var tries = 0;
            do refused = await D.CliAsync("run", h, "--detach", "--", "sleep", "30");
            while (refused.ExitCode == 0 && ++tries < 25);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Equal(21ul, U(await Json("metrics", h), "pidsCurrent"));
            Assert.Contains("pids limit", refused.Stderr);
            Assert.Equal(0, (await D.CliAsync("limit", h, "--pids", "40")).ExitCode);
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "killall", "sleep")).ExitCode);
            Assert.Equal("still here\n", (await D.CliAsync("run", h, "--", "echo", "still here")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task A_cpu_quota_of_a_fifth_holds()
    {
        var h = await Create("quota", "--cpu-quota", "0.2");
        try
        {
            var before = U(await Json("metrics", h), "cpuUsageNs");
            var spin = await D.CliAsync("run", h, "--", "timeout", "2", "sh", "-c", "while :; do :; done");
            var used = (U(await Json("metrics", h), "cpuUsageNs") - before) / 1e9;
            Assert.InRange(used, 0.1, 0.2 * 2 * 1.3); // at most a fifth of a CPU over 2 s, with scheduler slack
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Two_spinning_containers_on_one_cpu_share_it_by_weight()
    {
        var light = await Create("light", "--cpu-weight", "256");
        var heavy = await Create("heavy", "--cpu-weight", "1024");
        try
        {
            var b1 = U(await Json("metrics", light), "cpuUsageNs");
            var b2 = U(await Json("metrics", heavy), "cpuUsageNs");
            var spins = new[] { light, heavy }.Select(h => D.CliAsync("run", h, "--", "taskset", "-c", "0", "timeout", "3", "sh", "-c", "while :; do :; done")).ToList();
            await Task.WhenAll(spins);
            var l = U(await Json("metrics", light), "cpuUsageNs") - b1;
            var hv = U(await Json("metrics", heavy), "cpuUsageNs") - b2;
            var ratio = hv / (double)Math.Max(1, l);
            Assert.InRange(ratio, 2.0, 8.0); // 4:1 asked; the machine is shared and noisy
        }
        finally { await D.CliAsync("destroy", light, heavy); }
    }

    [InstallFact]
    public async Task Writing_past_the_disk_limit_fails_inside_and_the_host_is_untouched()
    {
        var h = await Create("disk", "--disk", "64M");
        try
        {
            var hostFree = new DriveInfo(D.StateDir).AvailableFreeSpace;
            var dd = await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=100");
            Assert.NotEqual(0, dd.ExitCode);
            Assert.Contains("No space left on device", dd.Stderr);
            Assert.True(hostFree - new DriveInfo(D.StateDir).AvailableFreeSpace < 80L << 20, "the host paid for the container's writes");
            var m = await Json("metrics", h);
            Assert.InRange(U(m, "diskLimitBytes"), 50UL << 20, 64UL << 20);
            Assert.True(U(m, "diskUsedBytes") > 40UL << 20);

            var grown = await D.CliAsync("limit", h, "--disk", "128M");
            if (HasCapSysResource())
            {
                Assert.True(grown.ExitCode == 0, grown.ToString());
                Assert.Equal(0, (await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/more", "bs=1M", "count=40")).ExitCode);
            }
            else
            {
                // ext4's online resize needs CAP_SYS_RESOURCE, which root lacks on this kind of machine: a clear refusal.
                Assert.Equal(1, grown.ExitCode);
                Assert.Contains("CAP_SYS_RESOURCE", grown.Stderr);
                Assert.InRange(U(await Json("metrics", h), "diskLimitBytes"), 50UL << 20, 64UL << 20);
            }

            var shrink = await D.CliAsync("limit", h, "--disk", "32M");
            Assert.Equal(1, shrink.ExitCode);
            Assert.Contains("shrink", shrink.Stderr);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h)); // first: it waits for the release, which detaches the disk before the depot goes
        Assert.Empty(LoopDevicesBackedBy(D.StateDir));
    }

    [InstallFact]
    public async Task Live_changes_reach_the_kernel_and_are_reported_as_given()
    {
        var h = await Create("live", "--memory", "64M", "--pids", "100");
        try
        {
            var changed = await Json("limit", h, "--memory", "128M", "--pids", "50", "--cpu-weight", "300");
            Assert.Equal(128UL << 20, U(changed.GetProperty("limits"), "memoryBytes"));
            Assert.Equal(50ul, U(changed.GetProperty("limits"), "pids"));
            Assert.Equal(300ul, U(changed.GetProperty("limits"), "cpuWeight"));
            var read = await Json("limit", h);
            Assert.Equal(128UL << 20, U(read.GetProperty("limits"), "memoryBytes"));
            // the processes' cgroup has the limit asked; the container's (agent + processes) that plus the agent's 32 MiB
            Assert.Equal("134217728", File.ReadAllText(HostCgroups.Dir("memory", D.CgroupParent, h, "work", HostCgroups.MemoryLimitFile)).Trim());
            Assert.Equal($"{(128 + 32) << 20}", File.ReadAllText(HostCgroups.Dir("memory", D.CgroupParent, h, HostCgroups.MemoryLimitFile)).Trim());

            var bad = await D.CliAsync("limit", h, "--memory", "1K");
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("memory", bad.Stderr);
            Assert.Equal(128UL << 20, U((await Json("limit", h)).GetProperty("limits"), "memoryBytes"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Bad_limits_at_create_are_refused_naming_the_value_and_leave_nothing()
    {
        var h = Unique("badlim");
        var r = await D.CliAsync("create", "--handle", h, "--memory", "1K");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("memory", r.Stderr);
        var usage = await D.CliAsync("create", "--handle", h, "--memory", "lots");
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("lots", usage.Stderr);
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task A_create_naming_no_pids_limit_gets_the_default_in_the_kernel()
    {
        var h = await Create("defpids");
        try
        {
            Assert.Equal(1024UL, U((await Json("info", h)).GetProperty("limits"), "pids"));
            Assert.Equal(1024UL, U(await Json("metrics", h), "pidsMax")); // read back from the kernel
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Total_disk_use_is_the_image_and_what_the_container_wrote_exclusive_only_what_it_wrote()
    {
        // the image: the regular files of the default rootfs (symlinks not followed), counted here independently
        var image = new DirectoryInfo(TestPaths.DefaultRootfs)
            .EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint })
            .Sum(f => f.Length);
        var h = await Create("disktotal", "--disk", "32M");
        try
        {
            var fresh = await Json("metrics", h);
            Assert.Equal((ulong)image, U(fresh, "diskImageBytes"));
            Assert.Equal(U(fresh, "diskUsedBytes") + (ulong)image, U(fresh, "diskTotalBytes"));
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/tmp/f", "bs=1M", "count=4")).ExitCode);
            var after = await Json("metrics", h);
            Assert.True(U(after, "diskUsedBytes") >= U(fresh, "diskUsedBytes") + (4UL << 20), after.ToString());
            Assert.Equal(U(after, "diskUsedBytes") + (ulong)image, U(after, "diskTotalBytes"));   // the image counted once, not again
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Metrics_count_the_agent_and_every_process_and_show_memory_in_use()
    {
        foreach (var flags in new[] { Array.Empty<string>(), ["--privileged"], ["--pids", "50"] })
        {
            var h = await Create("pidcount", flags);
            try
            {
                var idle = await Json("metrics", h);
                Assert.True(U(idle, "pidsCurrent") == 1, $"{string.Join(' ', flags)}: an idle container has its agent, PID 1: {idle}");
                // memory in use is the processes' (the cgroup the limit is on), not the agent's: none run yet
                Assert.True(U(idle, "memoryUsageBytes") < 1UL << 20, idle.ToString());
                Assert.Equal(0, (await D.CliAsync("run", h, "--detach", "--", "sleep", "100")).ExitCode);
                Assert.Equal(0, (await D.CliAsync("run", h, "--detach", "--", "sleep", "100")).ExitCode);
                var busy = await Json("metrics", h);
                Assert.True(U(busy, "pidsCurrent") == 3, $"{string.Join(' ', flags)}: agent and two sleeps: {busy}");
                // cgroup v1's memory.stat, as on this host: the kernel flushes its counters every 2 s, so two sleeps' few
                // pages may show a moment later (usage_in_bytes is exact at once)
                var deadline = DateTime.UtcNow.AddSeconds(5);
                while (U(busy.GetProperty("memoryStat"), "total_rss") == 0 && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(200);
                    busy = await Json("metrics", h);
                }
                var rss = U(busy.GetProperty("memoryStat"), "total_rss");
                Assert.True(rss > 0 && U(busy, "memoryUsageBytes") >= rss, busy.ToString());
                var text = await D.CliAsync("metrics", h);
                Assert.Contains("pids:     3 of", text.Stdout);
            }
            finally { await D.CliAsync("destroy", h); }
        }
    }
}

/// <summary>Limits and OOM notification after kill -9 (a daemon of its own).</summary>
public sealed class LimitsRestartTests
{
    [InstallFact]
    public async Task Limits_and_oom_notification_survive_a_kill_9()
    {
        var d = new Gardend();
        await d.StartAsync();
        var h = $"limrestart-{Guid.NewGuid():N}"[..19];
        try
        {
            Assert.Equal(0, (await d.CliAsync("create", "--handle", h, "--memory", "32M", "--pids", "64", "--disk", "64M")).ExitCode);
            var before = (await d.CliAsync("--json", "limit", h)).Stdout;
            await d.StopAsync(kill: true);
            await d.StartAsync();
            Assert.Equal(before, (await d.CliAsync("--json", "limit", h)).Stdout);
            Assert.Equal(137, (await d.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")).ExitCode);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            string events;
            do events = (await d.CliAsync("info", h)).Stdout;
            while (!events.Contains("out of memory") && DateTime.UtcNow < deadline && await Task.Delay(100).ContinueWith(_ => true));
            Assert.Contains("out of memory", events);
            Assert.Equal(0, (await d.CliAsync("destroy", h)).ExitCode);
            Assert.Empty(Host.Leftovers(d, h));
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.DisposeAsync();
        }
    }

    [InstallFact]
    public async Task Gardend_refuses_to_start_with_a_default_limit_out_of_range_naming_the_setting()
    {
        await using var d = new Gardend("garden.default-limits.memory = 1M");
        Assert.Equal(2, await d.StartExpectingExitAsync());
        Assert.Contains("garden.default-limits.memory: 1 MiB is out of range", d.Log);
    }
}
