using System.Diagnostics;
using System.Text.Json;
using Garden.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>
/// Root in an ordinary container against the agent, its PID 1 (issue 9, "the agent out of reach"): it may not read where
/// the agent's descriptors lead, open them, copy them, ptrace the agent or read its memory, nor talk to the agent's socket;
/// the attack program works against a dumpable child of its own in the same container, so each refusal is the agent's.
/// Afterwards the daemon still serves and the pids limit holds. A frozen agent makes calls fail within their deadline
/// without leaking gardend's descriptors; the agent's memory stays bounded over many runs and unread outputs.
/// Not refused, and not an attack: listing the numbers in /proc/1/fd (agent_reach list). The kernel lets the directory's
/// owner list it, and a non-dumpable process's /proc files belong to root of its user namespace, which is container root;
/// where each descriptor leads, and the descriptors themselves, stay out of reach (readlink, openw, getfd).
/// </summary>
public sealed class AgentEscapeTests(AgentEscapeTests.Container fx, ITestOutputHelper output) : IClassFixture<AgentEscapeTests.Container>
{
    public sealed class Container : IAsyncLifetime
    {
        private Gardend? _daemon;
        public Gardend Daemon => _daemon ?? throw new InvalidOperationException(Gate.Unmet(Needs.Root | Needs.Install) ?? "gardend not started");
        public string Handle { get; } = $"esc-{Guid.NewGuid():N}"[..12];

        public async Task InitializeAsync()
        {
            if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return; // its tests are skipped
            _daemon = new Gardend("garden.agent-call-timeout = 2s");
            await _daemon.StartAsync();
            var attack = Path.GetDirectoryName(AttackTool.Path("agent_reach"))!;
            var r = await Daemon.CliAsync("create", "--handle", Handle, "--pids", "20", "--memory", "256M", "--bind-mount", $"{attack}:/attack");
            if (r.ExitCode != 0) throw new InvalidOperationException(r.ToString());
        }

        public async Task DisposeAsync()
        {
            if (_daemon is null) return;
            var list = await Daemon.CliAsync("list");
            foreach (var h in list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)) await Daemon.CliAsync("destroy", h);
            await Daemon.DisposeAsync();
        }
    }

    private Gardend D => fx.Daemon;
    private string H => fx.Handle;

    private async Task<JsonElement> Json(params string[] args)
    {
        var r = await D.CliAsync(["--json", .. args]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    /// <summary>The agent's pid on the host (runc's pid file in the container's bundle).</summary>
    private static int AgentPid(Gardend d, string handle) =>
        int.Parse(File.ReadAllText(Path.Combine(d.StateDir, "depot", handle, "bundle", "init.pid")).Trim());

    private static async Task<CliResult> AsNobodyOnHost(string program, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", program }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    private async Task StillServing()
    {
        Assert.Equal(0, (await D.CliAsync("ping")).ExitCode);
        Assert.Equal("active", (await Json("info", H)).GetProperty("state").GetString());
        Assert.Equal("ok\n", (await D.CliAsync("run", H, "--", "echo", "ok")).Stdout);
        // the pids limit is where it was, on the host's side
        var pidsMax = (await Json("metrics", H)).GetProperty("pidsMax");
        Assert.Equal("20", pidsMax.ValueKind == JsonValueKind.String ? pidsMax.GetString() : pidsMax.GetRawText());
        // (on the process cgroup, whose pids.max the agent once held open: `echo max > /proc/1/fd/N` lifted it; the
        // limit asked plus the slot of the agent's spawner, which lives there)
        Assert.Equal("21", File.ReadAllText(HostCgroups.Dir("pids", D.CgroupParent, H, "work", "pids.max")).Trim());
        // and the memory limit, on the processes' cgroup (v1: whose directory in the memory hierarchy the agent holds)
        Assert.Equal($"{256 << 20}", File.ReadAllText(HostCgroups.Dir("memory", D.CgroupParent, H, "work", HostCgroups.MemoryLimitFile)).Trim());
    }

    [InstallTheory]
    [InlineData("readlink")]   // where /proc/1/fd/N leads
    [InlineData("openw")]      // open("/proc/1/fd/N", O_WRONLY): how `echo max > /proc/1/fd/N` lifted the pids limit
    [InlineData("getfd")]      // pidfd_open(1) + pidfd_getfd: the listening socket, the runc log
    [InlineData("ptrace")]     // PTRACE_ATTACH: freezing the agent, reading its requests
    [InlineData("seize")]      // PTRACE_SEIZE
    [InlineData("vmread")]     // process_vm_readv of PID 1
    [InlineData("connect")]    // the agent's socket by any path visible inside (/proc/1/fd/N, any socket file)
    public async Task Root_in_the_container_cannot_reach_the_agent(string mode)
    {
        // The control proves the probe detects success: the same attack against a dumpable child the program forks itself.
        // pidfd_getfd is refused by the container's seccomp profile outright (Docker's: only with CAP_SYS_PTRACE), so its
        // control runs on the host as nobody, where no capability and no filter helps it either.
        var control = mode == "getfd" ? await AsNobodyOnHost(AttackTool.Path("agent_reach"), "control", mode)
            : await D.CliAsync("run", H, "--", "/attack/agent_reach", "control", mode);
        Assert.True(control.ExitCode == 0, $"the attack must work against the program's own dumpable child: {control}");

        var attack = await D.CliAsync("run", H, "--", "/attack/agent_reach", mode, "1");
        Assert.True(attack.ExitCode == 1, $"{mode} against the agent must be refused: {attack}");
        await StillServing();
    }

    [InstallFact]
    public async Task The_agent_holds_no_host_file_and_its_log_reaches_the_host_through_gardend()
    {
        int pid = AgentPid(D, H);
        var targets = Directory.GetFileSystemEntries($"/proc/{pid}/fd").ToDictionary(f => int.Parse(Path.GetFileName(f)),
            f => new FileInfo(f).LinkTarget ?? "");
        for (int fd = 0; fd < 3; fd++) Assert.Equal("/dev/null", targets[fd]);
        // fd 3 is the listening socket, fd 4 the process cgroup's directory and, on v1, fd 5 that cgroup's directory in
        // the memory hierarchy: nothing else names a place on the host
        Assert.StartsWith("socket:", targets[3]);
        Assert.Equal(HostCgroups.Dir("pids", D.CgroupParent, H, "work"), targets[4]);
        var last = 4;
        if (!HostCgroups.Unified) Assert.Equal(HostCgroups.Dir("memory", D.CgroupParent, H, "work"), targets[last = 5]);
        foreach (var (fd, target) in targets.Where(t => t.Key > last))
            Assert.True(!target.StartsWith('/') || target == "/dev/null" || target == "/dev/urandom" || target.StartsWith("/dev/pts/"),
                $"fd {fd} leads to {target}");

        // the log: gardend appends what the agent logs, in a file only root reads; runc's log stays as runc left it
        var log = Path.Combine(D.StateDir, "depot", H, "agent.log");
        var id = $"logged-{Guid.NewGuid():N}"[..16];
        Assert.Equal(0, (await D.CliAsync("run", H, "--id", id, "--", "true")).ExitCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.ReadAllText(log).Contains($"process {id} pid") && DateTime.UtcNow < deadline) await Task.Delay(50);
        var text = File.ReadAllText(log);
        Assert.Contains("starting: pid 1", text);
        Assert.Contains($"process {id} pid", text);
        Assert.Equal((UnixFileMode)0b110_000_000, File.GetUnixFileMode(log));
        var runcLog = Path.Combine(D.StateDir, "depot", H, "bundle", "runc-run.log");
        long size = new FileInfo(runcLog).Length;
        await D.CliAsync("run", H, "--", "sh", "-c", "echo forged > /proc/1/fd/2; echo forged > /proc/1/fd/1");
        Assert.Equal(size, new FileInfo(runcLog).Length);
    }

    [InstallFact]
    public async Task A_frozen_agent_fails_calls_within_the_deadline_without_leaking_descriptors()
    {
        var h = $"frz-{Guid.NewGuid():N}"[..12];
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        int agent = AgentPid(D, h);
        int FdCount() => Directory.GetFileSystemEntries($"/proc/{D.Pid}/fd").Length;
        try
        {
            Assert.Equal(0, (await D.CliAsync("info", h)).ExitCode);
            Process.Start("kill", ["-STOP", agent.ToString()])!.WaitForExit();
            await D.CliAsync("info", H); // the daemon's own descriptors settle (another container answers)
            int before = FdCount();
            for (int i = 0; i < 8; i++)
            {
                var sw = Stopwatch.StartNew();
                var info = await D.CliAsync(["info", h], timeout: TimeSpan.FromSeconds(30));
                sw.Stop();
                Assert.NotEqual(0, info.ExitCode);
                Assert.Contains(h, info.Stderr);
                Assert.Contains("did not answer in time", info.Stderr);
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"info took {sw.Elapsed}");
            }
            var run = await D.CliAsync(["run", h, "--", "true"], timeout: TimeSpan.FromSeconds(30));
            Assert.NotEqual(0, run.ExitCode);
            Assert.Contains(h, run.Stderr);
            Assert.InRange(FdCount(), 0, before + 3);
            // the rest of the daemon serves meanwhile
            Assert.Equal("ok\n", (await D.CliAsync("run", H, "--", "echo", "ok")).Stdout);
        }
        finally
        {
            Process.Start("kill", ["-CONT", agent.ToString()])!.WaitForExit();
        }
        Assert.Equal(0, (await D.CliAsync("info", h)).ExitCode);
        Assert.Equal("thawed\n", (await D.CliAsync("run", h, "--", "echo", "thawed")).Stdout);
        Assert.Equal(0, (await D.CliAsync("destroy", h)).ExitCode);
    }

    private static long VmRssKb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    [InstallFact]
    public async Task The_agent_stays_small_after_many_runs_and_unread_outputs()
    {
        var h = $"rss-{Guid.NewGuid():N}"[..12];
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        int agent = AgentPid(D, h);
        try
        {
            var first = "first-run";
            Assert.Equal(0, (await D.CliAsync("run", h, "--id", first, "--", "true")).ExitCode);
            for (int i = 0; i < 300; i++)
            {
                var r = await D.CliAsync("run", h, "--", "true");
                Assert.True(r.ExitCode == 0, r.ToString());
            }
            long afterRuns = VmRssKb(agent);
            Assert.True(afterRuns < 30 * 1024, $"agent RSS after 300 runs: {afterRuns} kB");
            // the first run is long forgotten: an attach says so, as for a process that never was
            var gone = await D.CliAsync("attach", h, first);
            Assert.NotEqual(0, gone.ExitCode);
            Assert.Contains("unknown process", gone.Stderr);

            var ids = Enumerable.Range(0, 40).Select(i => $"mib-{i}").ToList();
            foreach (var id in ids)
                Assert.Equal(0, (await D.CliAsync("run", h, "--detach", "--id", id, "--", "head", "-c", "1048576", "/dev/zero")).ExitCode);
            // gardend sees each exit (its exit watcher), then the agent keeps only bounded tails of what nobody read
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await Json("info", h)).GetProperty("processIds").GetArrayLength() > 0 && DateTime.UtcNow < deadline)
                await Task.Delay(200);
            await Task.Delay(2000);
            long afterOutputs = VmRssKb(agent);
            output.WriteLine($"agent VmRSS: {afterRuns} kB after 300 runs, {afterOutputs} kB after 40 unread 1 MiB outputs");
            Assert.True(afterOutputs < 30 * 1024, $"agent RSS after 40 unread 1 MiB outputs: {afterOutputs} kB (after the runs: {afterRuns} kB)");
            // a process that exits after those (whose exits were reported together, in any order, and of which only the
            // last 4 MiB of tails are kept) is still there for a late attach, with its output and exit code
            Assert.Equal(0, (await D.CliAsync("run", h, "--detach", "--id", "late", "--", "sh", "-c", "echo bye; exit 3")).ExitCode);
            deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await Json("info", h)).GetProperty("processIds").GetArrayLength() > 0 && DateTime.UtcNow < deadline)
                await Task.Delay(200);
            var late = await D.CliAsync("attach", h, "late");
            Assert.True(late.ExitCode == 3, $"late attach: {late}");
            Assert.Equal("bye\n", late.Stdout);
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
    }
}
