using System.Diagnostics;
using System.Text.Json;
using Garden.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>
/// Root in an ordinary container against the agent's spawner (issue 13: the fork server that lives in the container's
/// work cgroups and forks every process, src/Agent/native/spawn.c). Unlike the agent it is not PID 1, so container root
/// sees it and may signal it; it must be as far out of reach as the agent otherwise: no reading where its descriptors
/// lead, opening or copying them, no ptrace, no reading its memory (the attack program proves each attack against a
/// dumpable child of its own). Killing or stopping it from inside costs no Run: the agent runs that one directly and
/// starts another spawner. And the spawner's slot in the work cgroup does not cost the container a process of its pids
/// limit.
/// </summary>
public sealed class SpawnerEscapeTests(SpawnerEscapeTests.Container fx, ITestOutputHelper output) : IClassFixture<SpawnerEscapeTests.Container>
{
    public sealed class Container : IAsyncLifetime
    {
        private Gardend? _daemon;
        public Gardend Daemon => _daemon ?? throw new InvalidOperationException(Gate.Unmet(Needs.Root | Needs.Install) ?? "gardend not started");
        public string Handle { get; } = $"spw-{Guid.NewGuid():N}"[..12];

        public async Task InitializeAsync()
        {
            if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return; // its tests are skipped
            _daemon = new Gardend();
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

    private static ulong U(JsonElement e, string name)
    {
        var v = e.GetProperty(name);
        return v.ValueKind == JsonValueKind.String ? ulong.Parse(v.GetString()!) : v.GetUInt64();
    }

    /// <summary>The spawner's pid as the container sees it (by its name, which any process of the container may read),
    /// or null when none runs; waits up to <paramref name="timeout"/> for one other than <paramref name="not"/>.</summary>
    private async Task<int?> SpawnerPid(string handle, int? not = null, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var r = await D.CliAsync("run", handle, "--", "sh", "-c",
                "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = garden-spawner ] && echo ${p#/proc/}; done; true");
            Assert.True(r.ExitCode == 0, r.ToString());
            var pids = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).Where(p => p != not).ToList();
            Assert.True(pids.Count <= 1, $"more than one spawner: {r.Stdout}");
            if (pids.Count == 1) return pids[0];
            if (DateTime.UtcNow > deadline) return null;
            await Task.Delay(300);
        }
    }

    private static async Task<CliResult> AsNobodyOnHost(string program, params string[] args)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", program }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    [InstallTheory]
    [InlineData("readlink")]   // where /proc/PID/fd/N leads
    [InlineData("openw")]      // open("/proc/PID/fd/N", O_WRONLY)
    [InlineData("getfd")]      // pidfd_open + pidfd_getfd: its socket to the agent
    [InlineData("ptrace")]     // PTRACE_ATTACH: making it fork something else, or run code
    [InlineData("seize")]      // PTRACE_SEIZE
    [InlineData("vmread")]     // process_vm_readv: the environments of the requests it served
    public async Task Root_in_the_container_cannot_reach_the_spawner(string mode)
    {
        var spawner = await SpawnerPid(H);
        Assert.NotNull(spawner);
        var control = mode == "getfd" ? await AsNobodyOnHost(AttackTool.Path("agent_reach"), "control", mode)
            : await D.CliAsync("run", H, "--", "/attack/agent_reach", "control", mode);
        Assert.True(control.ExitCode == 0, $"the attack must work against the program's own dumpable child: {control}");

        var attack = await D.CliAsync("run", H, "--", "/attack/agent_reach", mode, spawner.Value.ToString());
        output.WriteLine(attack.ToString());
        Assert.True(attack.ExitCode == 1, $"{mode} against the spawner (pid {spawner}) must be refused: {attack}");

        Assert.Equal("ok\n", (await D.CliAsync("run", H, "--", "echo", "ok")).Stdout);
        Assert.Equal(spawner, await SpawnerPid(H));
    }

    [InstallFact]
    public async Task Root_in_the_container_kills_the_spawner_and_every_run_still_starts_and_another_spawner_takes_over()
    {
        var h = $"spk-{Guid.NewGuid():N}"[..12];
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h, "--pids", "20")).ExitCode);
        try
        {
            var first = await SpawnerPid(h);
            Assert.NotNull(first);
            // SIGTERM (and any signal it can block) does nothing; SIGKILL ends it
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "kill", "-TERM", first.Value.ToString())).ExitCode);
            Assert.Equal(first, await SpawnerPid(h));
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "kill", "-KILL", first.Value.ToString())).ExitCode);
            for (int i = 0; i < 3; i++)
            {
                var r = await D.CliAsync("run", h, "--", "echo", $"run {i}");
                Assert.True(r.ExitCode == 0, r.ToString());
                Assert.Equal($"run {i}\n", r.Stdout);
            }
            await Task.Delay(1100);    // the agent starts at most one spawner a second
            Assert.Equal("ok\n", (await D.CliAsync("run", h, "--", "echo", "ok")).Stdout);
            var second = await SpawnerPid(h, not: first);
            Assert.NotNull(second);
            Assert.NotEqual(first, second);
            // and the count is what it was: the agent with its spawner, as one process
            Assert.Equal(1ul, U(await Json("metrics", h), "pidsCurrent"));
            var log = File.ReadAllText(Path.Combine(D.StateDir, "depot", h, "agent.log"));
            Assert.Contains($"spawner pid {first} is gone or stopped answering", log);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Root_in_the_container_stops_the_spawner_and_a_run_still_starts_within_seconds()
    {
        var h = $"sps-{Guid.NewGuid():N}"[..12];
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            var spawner = await SpawnerPid(h);
            Assert.NotNull(spawner);
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "kill", "-STOP", spawner.Value.ToString())).ExitCode);
            var sw = Stopwatch.StartNew();
            var r = await D.CliAsync(["run", h, "--", "echo", "ok"], timeout: TimeSpan.FromSeconds(30));
            sw.Stop();
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal("ok\n", r.Stdout);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the run took {sw.Elapsed}");
            // the stopped one was killed, not left behind
            await Task.Delay(1100);
            Assert.Equal("ok\n", (await D.CliAsync("run", h, "--", "echo", "ok")).Stdout);
            Assert.NotEqual(spawner, await SpawnerPid(h, not: spawner));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task A_container_with_a_pids_limit_of_five_runs_five_processes_of_its_own_and_no_sixth()
    {
        var h = $"sp5-{Guid.NewGuid():N}"[..12];
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h, "--pids", "5")).ExitCode);
        try
        {
            Assert.NotNull(await SpawnerPid(h));
            for (int i = 0; i < 5; i++)
            {
                var r = await D.CliAsync("run", h, "--detach", "--", "sleep", "100");
                Assert.True(r.ExitCode == 0, $"process {i + 1} of 5: {r}");
            }
            var sixth = await D.CliAsync("run", h, "--detach", "--", "sleep", "100");
            Assert.NotEqual(0, sixth.ExitCode);
            Assert.Contains("pids limit", sixth.Stderr);
            var m = await Json("metrics", h);
            Assert.Equal(5ul, U(m, "pidsMax"));
            Assert.Equal(6ul, U(m, "pidsCurrent"));   // five and the agent (with its spawner)
        }
        finally { await D.CliAsync("destroy", h); }
    }
}
