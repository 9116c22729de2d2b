using System.Diagnostics;
using System.Net.Sockets;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>
/// The agent out of a container's reach, against the agent run as PID 1 without CAP_SYS_PTRACE (as in an ordinary
/// container): root inside cannot ptrace it, read or open its descriptors or copy them, or read its memory, while the same
/// attack program succeeds against a dumpable process it forks itself; it holds no host file; its log waits for a follower.
/// </summary>
public sealed class AgentHardeningTests(AgentFixture agent) : IClassFixture<AgentFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;
    private IAgentClient Client => agent.Client;

    private static string NewId(string name) => $"{name}-{Guid.NewGuid():N}"[..20];

    private async Task<RunResult> AttackAsync(params string[] args)
    {
        var bin = Path.Combine(agent.Root, "bin", "agent_reach");
        if (!File.Exists(bin))
        {
            File.Copy(AttackTool.Path("agent_reach"), bin + ".tmp", overwrite: true);
            File.Move(bin + ".tmp", bin, overwrite: true);
        }
        return await Client.RunAsync(Cmd(NewId("attack"), "/bin/agent_reach", args));
    }

    [InstallTheory]
    [InlineData("readlink")]
    [InlineData("openw")]
    [InlineData("getfd")]
    [InlineData("ptrace")]
    [InlineData("seize")]
    [InlineData("vmread")]
    public async Task Root_inside_cannot_reach_the_agent_while_the_same_attack_works_on_a_dumpable_process(string mode)
    {
        var control = await AttackAsync("control", mode);
        Assert.True(control.ExitCode == 0, $"the attack program must work against its own child: {control.Output}");

        var attack = await AttackAsync(mode, "1");
        Assert.True(attack.ExitCode == 1, $"{mode} of the agent must be refused: {attack.Output}");
        Assert.Equal(1, (await Client.PingAsync(None)).AgentPid);
    }

    [InstallFact]
    public async Task The_agent_keeps_no_host_file_its_stdio_is_dev_null()
    {
        // runc hands the agent a host file as stderr (here: StderrPath); once it runs, 0, 1 and 2 are /dev/null
        // (seen from the host, the container's /dev is under its root)
        string dev = agent.Root + "/dev/";
        for (int fd = 0; fd < 3; fd++)
            Assert.Equal(dev + "null", new FileInfo($"/proc/{agent.AgentHostPid}/fd/{fd}").LinkTarget);
        foreach (var fd in Directory.GetFileSystemEntries($"/proc/{agent.AgentHostPid}/fd"))
        {
            var target = new FileInfo(fd).LinkTarget ?? "";
            // the container's own devices (the runtime reads urandom), sockets, pipes, epoll and eventfds: nothing of the host
            Assert.True(target == dev + "null" || target == dev + "urandom" || target.StartsWith("socket:", StringComparison.Ordinal)
                || target.StartsWith("pipe:", StringComparison.Ordinal) || target.StartsWith("anon_inode:", StringComparison.Ordinal)
                || target.StartsWith(dev + "pts/", StringComparison.Ordinal) || target == dev + "ptmx",
                $"{fd} leads to {target}");
        }
        await Client.RunAsync(Cmd(NewId("echo"), "echo", "hi"));
        Assert.Equal("", await File.ReadAllTextAsync(agent.StderrPath));
    }

    [InstallFact]
    public async Task Log_lines_wait_for_a_follower_and_overflow_is_counted()
    {
        using var own = new AgentFixture();
        Assert.Contains("garden-agent 0.1.0 starting: pid 1", own.WaitForLog("starting: pid 1"));

        await own.StopFollowingLogAsync();
        // with nobody following: more lines than the agent keeps (each refused attach logs one)
        int n = AgentLogMaxLines + 500;
        for (int i = 0; i < n; i++)
            await Assert.ThrowsAsync<AgentException>(() => own.Client.AttachAsync($"missing-{i}", 0, None));
        own.FollowLog();
        var log = own.WaitForLog($"no process missing-{n - 1}");
        Assert.Contains($"no process missing-{n - 1}", log);
        Assert.Matches(@"WARN gardend: \d+ agent log lines were lost while no daemon followed", log);
        Assert.DoesNotContain("no process missing-0\n", log);
    }

    private const int AgentLogMaxLines = 4096;

    [InstallFact]
    public async Task A_peer_outside_the_container_that_is_not_the_host_root_is_refused()
    {
        using var own = new AgentFixture();
        // let any uid reach the socket: only the agent's own check stands in the way
        foreach (var dir in new[] { own.Root, Path.Combine(own.Root, ".garden"), Path.Combine(own.Root, ".garden", "run") })
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(own.SocketPath, (UnixFileMode)0b111_111_111);
        var probe = AttackTool.Path("agent_reach");
        var r = Run("setpriv", "--reuid=65533", "--regid=65533", "--clear-groups", "--", probe, "connect-path", own.SocketPath);
        Assert.True(r.ExitCode == 1, r.Output);
        Assert.Contains("refused peer uid 65533", own.WaitForLog("refused peer uid"));
        // root from the host is served
        Assert.Equal(0, Run(probe, "connect-path", own.SocketPath).ExitCode);
    }

    [InstallFact]
    public async Task Exits_reported_to_the_daemon_are_forgotten_beyond_the_recent_ones()
    {
        using var own = new AgentFixture();
        var first = NewId("first");
        Assert.Equal(0, (await own.Client.RunAsync(Cmd(first, "true"))).ExitCode);
        // still there for a late attach
        await using (var s = await own.Client.AttachAsync(first, 0, None))
            Assert.Equal(0, (await s.CollectAsync(None)).ExitCode);

        for (int i = 0; i < 300; i++) Assert.Equal(0, (await own.Client.RunAsync(Cmd($"run-{i}", "true"))).ExitCode);
        // (the last Run's stream may still be closing on the agent's side, its exit not yet settled among the recent ones)
        var list = await own.Client.ListAsync(None);
        for (var deadline = DateTime.UtcNow.AddSeconds(5); list.Count > 64 && DateTime.UtcNow < deadline; list = await own.Client.ListAsync(None))
            await Task.Delay(20);
        Assert.InRange(list.Count, 1, 64);
        Assert.All(list, p => Assert.True(p.ExitReported));
        var e = await Assert.ThrowsAsync<AgentException>(() => own.Client.AttachAsync(first, 0, None));
        Assert.Equal(ErrorCode.NotFound, e.Code);
        // the most recent is attachable
        await using (var s = await own.Client.AttachAsync("run-299", 0, None))
            Assert.Equal(0, (await s.CollectAsync(None)).ExitCode);
        var rss = VmRssKb(own.AgentHostPid);
        Assert.True(rss < 30 * 1024, $"agent RSS after 300 runs: {rss} kB");
    }

    [InstallFact]
    public async Task Unread_output_of_exits_the_daemon_saw_is_bounded()
    {
        using var own = new AgentFixture();
        var ids = Enumerable.Range(0, 40).Select(i => $"mib-{i}").ToList();
        foreach (var id in ids) await own.Client.SpawnAsync(Cmd(id, "head", "-c", "1048576", "/dev/zero"), None);

        // nobody reads, and no List reports an exit meanwhile (the host watches the agent's children instead): until the
        // daemon has seen an exit, the whole output is kept
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Children(own.AgentHostPid) > 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        await Task.Delay(300);
        var list = await own.Client.ListAsync(None);
        Assert.All(ids, id => Assert.Contains(list, p => p.Id == id && p.Exited && p.OutputEnd == 1048576));
        // that List reported the exits: only tails are kept, and the oldest are forgotten within the byte budget
        list = await own.Client.ListAsync(None);
        Assert.InRange(list.Count(p => ids.Contains(p.Id)), 1, 40);
        await using (var s = await own.Client.AttachAsync("mib-39", 0, None))
        {
            var r = await s.CollectAsync(new CancellationTokenSource(20_000).Token);
            var missed = r.Events.First();
            Assert.Equal(AgentEvent.KindOneofCase.Missed, missed.KindCase);
            Assert.Equal((ulong)(1048576 - 256 * 1024), missed.Missed.To);
            Assert.Equal(256 * 1024, r.Stdout.Length);
        }
        await Task.Delay(500);
        var rss = VmRssKb(own.AgentHostPid);
        Assert.True(rss < 30 * 1024, $"agent RSS after 40 unread 1 MiB outputs: {rss} kB");
    }

    private static int Children(int pid) => Directory.GetDirectories($"/proc/{pid}/task").Sum(t =>
    {
        try
        {
            return File.ReadAllText(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        }
        catch (DirectoryNotFoundException)
        {
            return 0;   // a thread of the agent ended between the listing and the read: it has no children
        }
    });

    internal static long VmRssKb(int pid) =>
        long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    private static RunResult Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEnd();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return new RunResult(stdout, stderr, p.ExitCode, 0, []);
    }
}

/// <summary>The client's deadline against an agent that takes connections and never answers (a frozen one).</summary>
public sealed class AgentDeadlineTests
{
    [Fact]
    public async Task A_frozen_agent_fails_each_call_within_the_deadline_and_leaks_no_descriptor()
    {
        var dir = Directory.CreateTempSubdirectory("garden-agent-client-");
        try
        {
            string path = Path.Combine(dir.FullName, "agent.sock");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(512); // the kernel completes connections; nobody accepts or answers
            var client = new AgentClient(path, TimeSpan.FromMilliseconds(300));

            const int calls = 20;
            for (int i = 0; i < calls; i++)
            {
                var sw = Stopwatch.StartNew();
                var e = await Assert.ThrowsAsync<AgentUnavailableException>(() => i % 2 == 0
                    ? client.ListAsync(CancellationToken.None)
                    : client.AttachAsync("p", 0, CancellationToken.None));
                Assert.True(e.TimedOut, e.Message);
                Assert.Contains("no answer within 0.3s", e.Message);
                Assert.InRange(sw.ElapsedMilliseconds, 250, 5000);
            }
            // every connection the client made is closed on its side: the agent, thawed, reads EOF on each
            for (int i = 0; i < calls; i++)
            {
                using var c = listener.Accept();
                Assert.True(c.Poll(2_000_000, SelectMode.SelectRead), $"connection {i} is still open on the client's side");
                var buf = new byte[64];
                int n;
                while ((n = c.Receive(buf)) > 0)
                {
                    // the request it sent before giving up
                }
                Assert.Equal(0, n);
            }
            listener.Blocking = false;
            Assert.Throws<SocketException>(() => listener.Accept()); // and no more than one per call
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Theory]
    [InlineData("0 0 4294967295", 0u)]                       // no user namespace
    [InlineData("0 4294967294 1\n1 1 4294967293", 65534u)]   // Garden's mapping: host root is not mapped
    [InlineData("0 100000 65536", 65534u)]                    // a per-container range
    [InlineData("0 1000 1\n5 0 1", 5u)]                       // host root mapped to 5
    public void Host_root_appears_as_its_mapped_uid_or_the_overflow_uid(string uidMap, uint expected) =>
        Assert.Equal(expected, HostRoot.FromUidMap(uidMap, 65534));
}
