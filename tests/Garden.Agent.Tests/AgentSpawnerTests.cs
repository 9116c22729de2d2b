using System.Diagnostics;
using Garden.Linux.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>The agent's spawner (native/spawn.c, spawner_main; Spawner.cs): the fork server that starts every process, so
/// a Run needs no cgroup move. What it may hold and who is the parent of what it forks; that a spawner killed, stopped or
/// sent a stray signal costs no Run (the request takes the direct path, another spawner starts later); and that a request
/// too large for one message takes the direct path. Each test gets its own agent: they kill its spawner.</summary>
public sealed class AgentSpawnerTests : IDisposable
{
    private readonly AgentFixture _agent = new();
    private IAgentClient Client => _agent.Client;

    public void Dispose() => _agent.Dispose();

    private static string NewId(string name) => $"{name}-{Guid.NewGuid():N}"[..20];

    /// <summary>The spawner's pid on the host: the agent's child named garden-spawner (waits for it to be there).</summary>
    private int SpawnerHostPid(int not = 0, int timeoutMs = 10_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            var found = Children(_agent.AgentHostPid)
                .Where(p => p != not && Comm(p) == "garden-spawner" && State(p) is not ('Z' or 'X'))
                .ToList();
            if (found.Count == 1) return found[0];
            Assert.True(found.Count <= 1, $"more than one spawner: {string.Join(' ', found)}");
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no spawner (other than {not}) under the agent");
            Thread.Sleep(20);
        }
    }

    private static IEnumerable<int> Children(int pid) =>
        Directory.GetDirectories($"/proc/{pid}/task")
            .SelectMany(t => ReadOr(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse);

    private static string ReadOr(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
    }

    private static string Comm(int pid) => ReadOr($"/proc/{pid}/comm").Trim();

    private static char State(int pid)
    {
        var stat = ReadOr($"/proc/{pid}/stat");
        var close = stat.LastIndexOf(')');
        return close < 0 || close + 2 >= stat.Length ? 'X' : stat[close + 2];
    }

    private static void Signal(int pid, string sig) => Process.Start("kill", [$"-{sig}", pid.ToString()])!.WaitForExit();

    [InstallFact]
    public async Task The_spawner_forks_every_process_whose_parent_is_the_agent_and_holds_only_its_socket_and_dev_null()
    {
        int spawner = SpawnerHostPid();
        var id = NewId("ppid");
        var r = await Client.RunAsync(Cmd(id, "sh", "-c", "echo $PPID"));
        Assert.Equal("1\n", r.Stdout);     // the agent (PID 1) is the parent, not the spawner: its reaper reports the exit
        Assert.Contains($"process {id} pid", _agent.WaitForLog($"process {id} pid"));
        Assert.Contains($"process {id} pid", _agent.ReadLog().Split('\n').Single(l => l.Contains($"process {id} pid") && l.Contains("started by the spawner")));

        var fds = Directory.GetFileSystemEntries($"/proc/{spawner}/fd").ToDictionary(f => int.Parse(Path.GetFileName(f)),
            f => new FileInfo(f).LinkTarget ?? "");
        Assert.Equal([0, 1, 2], fds.Keys.Order().ToArray());
        Assert.StartsWith("socket:", fds[0]);
        Assert.EndsWith("/dev/null", fds[1]);   // the sandbox's /dev/null, as the host names it
        Assert.EndsWith("/dev/null", fds[2]);
        // a pure C loop (no .NET runtime, so one thread) with its own small mm, and its process (in its own session)
        var status = File.ReadAllLines($"/proc/{spawner}/status");
        Assert.Contains("Threads:\t1", status);
        var rssKb = long.Parse(status.Single(l => l.StartsWith("RssAnon:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        Assert.True(rssKb < 1024, $"spawner anonymous memory {rssKb} kB");
        Assert.Equal(spawner, SpawnerHostPid());   // the same spawner served the run
    }

    [InstallFact]
    public async Task A_killed_spawner_costs_no_run_and_another_one_starts()
    {
        int first = SpawnerHostPid();
        Signal(first, "KILL");
        var id = NewId("afterkill");
        var r = await Client.RunAsync(Cmd(id, "echo", "ok"));
        Assert.Equal("ok\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
        var log = _agent.WaitForLog($"process {id} pid");
        Assert.Contains($"spawner pid", log);
        Assert.Contains("is gone or stopped answering", log);

        // a later spawn (a second on: at most one start a second) starts another spawner, which serves it
        await Task.Delay(1100);
        var again = NewId("again");
        Assert.Equal("ok\n", (await Client.RunAsync(Cmd(again, "echo", "ok"))).Stdout);
        int second = SpawnerHostPid(not: first);
        Assert.NotEqual(first, second);
        Assert.Contains(_agent.WaitForLog($"process {again} pid").Split('\n'), l => l.Contains($"process {again} pid") && l.Contains("by the spawner"));
    }

    [InstallFact]
    public async Task A_stopped_spawner_is_killed_within_its_timeout_and_the_run_still_starts()
    {
        int spawner = SpawnerHostPid();
        Signal(spawner, "STOP");
        var sw = Stopwatch.StartNew();
        var r = await Client.RunAsync(Cmd(NewId("stopped"), "echo", "ok"));
        sw.Stop();
        Assert.Equal("ok\n", r.Stdout);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the run took {sw.Elapsed}");
        Assert.Contains("is gone or stopped answering", _agent.WaitForLog("is gone or stopped answering"));
        // it was killed, not left stopped
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Directory.Exists($"/proc/{spawner}") && State(spawner) is not ('Z' or 'X') && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.True(!Directory.Exists($"/proc/{spawner}") || State(spawner) is 'Z' or 'X', $"spawner {spawner} is {State(spawner)}");
    }

    [InstallFact]
    public async Task Stray_signals_do_not_end_the_spawner()
    {
        int spawner = SpawnerHostPid();
        foreach (var sig in new[] { "TERM", "INT", "HUP", "USR1", "PIPE", "CHLD" }) Signal(spawner, sig);
        await Task.Delay(200);
        Assert.Equal("ok\n", (await Client.RunAsync(Cmd(NewId("sig"), "echo", "ok"))).Stdout);
        Assert.Equal(spawner, SpawnerHostPid());
        Assert.DoesNotContain("is gone", _agent.ReadLog());
    }

    [InstallFact]
    public async Task A_request_too_large_for_one_message_starts_directly_and_the_spawner_stays()
    {
        int spawner = SpawnerHostPid();
        var id = NewId("bigenv");
        // 300 KiB of environment (one string may be 128 KiB at most, execve's MAX_ARG_STRLEN)
        var spec = Cmd(id, "sh", "-c", "echo $((${#BIG1} + ${#BIG2} + ${#BIG3}))");
        for (int i = 1; i <= 3; i++) spec.Env.Add($"BIG{i}=" + new string('x', 100 * 1024));
        var r = await Client.RunAsync(spec);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Equal($"{300 * 1024}\n", r.Stdout);
        Assert.Contains(_agent.WaitForLog($"process {id} pid").Split('\n'), l => l.Contains($"process {id} pid") && l.Contains("started directly"));
        Assert.Equal(spawner, SpawnerHostPid());
        Assert.Equal("ok\n", (await Client.RunAsync(Cmd(NewId("small"), "echo", "ok"))).Stdout);
    }

    [InstallFact]
    public async Task Exec_failures_tty_user_rlimits_and_dir_through_the_spawner_are_reported_as_before()
    {
        SpawnerHostPid();
        // the child's execve failed: stage and errno through the error pipe, after the child's pid
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(Cmd(NewId("missing"), "/no/such/program"), CancellationToken.None));
        Assert.Equal(Garden.Protocol.Agent.ErrorCode.NotExecutable, e.Code);
        Assert.Contains("/no/such/program", e.Message);
        e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(Cmd(NewId("nodir"), "/bin/true") is var s && (s.Dir = "/etc/passwd") is not null ? s : s, CancellationToken.None));
        Assert.Equal(Garden.Protocol.Agent.ErrorCode.BadDirectory, e.Code);

        var spec = Cmd(NewId("all"), "sh", "-c", "id -u; ulimit -n; pwd; test -t 0 && echo tty");
        spec.User = "vcap";
        spec.Dir = "/tmp";
        spec.Tty = true;
        spec.Rlimits.Add(new Garden.Protocol.Agent.Rlimit { Name = "nofile", Soft = 123, Hard = 456 });
        var r = await Client.RunAsync(spec);
        Assert.True(r.ExitCode == 0, r.Output);
        Assert.Equal("1000\r\n123\r\n/tmp\r\ntty\r\n", r.Stdout);
    }
}
