using System.Net.Sockets;
using System.Text;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>What a user of the agent sees: output, exit codes, users, env, limits, ttys, stdin.</summary>
public sealed class AgentProcessTests(AgentFixture agent) : IClassFixture<AgentFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;
    private IAgentClient Client => agent.Client;

    private static string NewId(string name) => $"{name}-{Guid.NewGuid():N}"[..20];

    [InstallFact]
    public async Task Ping_answers_as_pid_1()
    {
        var pong = await Client.PingAsync(None);
        Assert.Equal(1, pong.AgentPid);
        Assert.False(string.IsNullOrEmpty(pong.Version));
    }

    [InstallFact]
    public async Task Echo_prints_and_exits_zero()
    {
        var r = await Client.RunAsync(Cmd(NewId("echo"), "/bin/echo", "hello", "world"));
        Assert.Equal("hello world\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(0, r.Signal);
    }

    [InstallFact]
    public async Task Exit_code_is_reported()
    {
        var r = await Client.RunAsync(Cmd(NewId("exit"), "sh", "-c", "exit 7"));
        Assert.Equal(7, r.ExitCode);
    }

    [InstallFact]
    public async Task Stderr_is_its_own_stream_with_shared_offsets()
    {
        var r = await Client.RunAsync(Cmd(NewId("err"), "sh", "-c", "echo out; echo err >&2; echo out2"));
        Assert.Equal("out\nout2\n", r.Stdout);
        Assert.Equal("err\n", r.Stderr);
        ulong expected = 0;
        foreach (var ev in r.Events.Where(e => e.KindCase == AgentEvent.KindOneofCase.Output))
        {
            Assert.Equal(expected, ev.Output.Offset);
            expected += (ulong)ev.Output.Data.Length;
        }
        Assert.Equal(13ul, expected);
    }

    [InstallFact]
    public async Task Killed_by_signal_reports_128_plus_signal()
    {
        var id = NewId("kill");
        await using var s = await Client.SpawnAttachedAsync(Cmd(id, "sleep", "100"), None);
        Assert.True(s.Pid > 1);
        await Client.SignalAsync(id, 9, None);
        var r = await s.CollectAsync(new CancellationTokenSource(10_000).Token);
        Assert.Equal(137, r.ExitCode);
        Assert.Equal(9, r.Signal);
        // signalling an exited process is fine
        await Client.SignalAsync(id, 15, None);
    }

    [InstallFact]
    public async Task Signal_to_unknown_process_is_not_found()
    {
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SignalAsync("no-such-process", 15, None));
        Assert.Equal(ErrorCode.NotFound, e.Code);
    }

    [InstallFact]
    public async Task Attach_to_unknown_process_is_not_found()
    {
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.AttachAsync("no-such-process", 0, None));
        Assert.Equal(ErrorCode.NotFound, e.Code);
    }

    [InstallFact]
    public async Task Duplicate_id_is_already_exists()
    {
        var id = NewId("dup");
        await Client.RunAsync(Cmd(id, "true"));
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(Cmd(id, "true"), None));
        Assert.Equal(ErrorCode.AlreadyExists, e.Code);
    }

    [InstallFact]
    public async Task Stdin_round_trips_through_cat()
    {
        var r = await Client.RunAsync(Cmd(NewId("cat"), "cat"), stdin: "line one\nline two\n");
        Assert.Equal("line one\nline two\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [InstallFact]
    public async Task Without_keep_stdin_the_process_reads_eof()
    {
        var r = await Client.RunAsync(Cmd(NewId("cat0"), "cat"));
        Assert.Equal("", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [InstallFact]
    public async Task Non_executable_path_is_not_executable()
    {
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(Cmd(NewId("nx"), "/etc/passwd"), None));
        Assert.Equal(ErrorCode.NotExecutable, e.Code);
        Assert.Contains("/etc/passwd", e.Message);

        e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(Cmd(NewId("nx"), "/no/such/binary"), None));
        Assert.Equal(ErrorCode.NotExecutable, e.Code);
        Assert.Contains("/no/such/binary", e.Message);

        e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(Cmd(NewId("nx"), "no-such-command"), None));
        Assert.Equal(ErrorCode.NotExecutable, e.Code);
        Assert.Equal("executable file not found in $PATH: no-such-command", e.Message);
    }

    [InstallFact]
    public async Task A_missing_working_directory_is_made_owned_by_the_user()
    {
        var dir = $"/tmp/{NewId("made")}/sub";
        var spec = Cmd(NewId("dir"), "sh", "-c", "pwd; stat -c '%u:%g %a' . ..");
        spec.Dir = dir;
        spec.User = "vcap";
        var r = await Client.RunAsync(spec);
        Assert.Equal($"{dir}\n1000:1000 755\n1000:1000 755\n", r.Stdout);
    }

    [InstallFact]
    public async Task A_user_other_than_root_can_reopen_its_own_stdio()
    {
        // /proc/self/fd/N, where /dev/stdout and the others lead: a reopened pipe is checked against the pipe's owner
        var spec = Cmd(NewId("stdio"), "sh", "-c", "echo -n potato >/proc/self/fd/1; echo -n cake >/proc/self/fd/2; stat -c ' %u' /dev/null");
        spec.User = "vcap";
        var r = await Client.RunAsync(spec);
        Assert.Equal(("potato 0\n", "cake", 0), (r.Stdout, r.Stderr, r.ExitCode));   // /dev/null stays root's
    }

    [InstallFact]
    public async Task A_numeric_user_not_in_passwd_has_no_supplementary_groups()
    {
        var spec = Cmd(NewId("bigid"), "id");
        spec.User = "1000000000:1000000000";
        Assert.Equal("uid=1000000000 gid=1000000000\n", (await Client.RunAsync(spec)).Stdout);
    }

    [InstallFact]
    public async Task A_user_other_than_root_gets_Garden_s_path_without_sbin()
    {
        var spec = Cmd(NewId("path"), "sh", "-c", "echo $PATH");
        spec.User = "vcap";
        Assert.Equal("/usr/local/bin:/usr/bin:/bin\n", (await Client.RunAsync(spec)).Stdout);
        var ifconfig = Cmd(NewId("sbin"), "ifconfig");
        ifconfig.User = "vcap";
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(ifconfig, None));
        Assert.Equal(ErrorCode.NotExecutable, e.Code);
        Assert.Equal(0, (await Client.RunAsync(Cmd(NewId("sbin"), "ifconfig", "lo"))).ExitCode);   // root's PATH has sbin
    }

    [InstallFact]
    public async Task A_working_directory_that_cannot_be_made_is_bad_directory()
    {
        foreach (var (dir, why) in new[] { ("/etc/passwd/sub", "Not a directory"), ("/proc/self/fd/0", "/proc link"), ("/proc/1/cwd/x", "/proc link") })
        {
            var spec = Cmd(NewId("dir"), "pwd");
            spec.Dir = dir;
            var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(spec, None));
            Assert.Equal(ErrorCode.BadDirectory, e.Code);
            Assert.Contains(dir, e.Message);
            Assert.Contains(why, e.Message);
        }
    }

    [InstallFact]
    public async Task Unknown_user_is_no_such_user()
    {
        var spec = Cmd(NewId("user"), "id");
        spec.User = "nosuchuser";
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(spec, None));
        Assert.Equal(ErrorCode.NoSuchUser, e.Code);
        Assert.Contains("nosuchuser", e.Message);
    }

    [InstallFact]
    public async Task User_vcap_runs_as_1000_in_its_home()
    {
        var spec = Cmd(NewId("vcap"), "sh", "-c", "id -u; id -g; pwd; echo $HOME $USER");
        spec.User = "vcap";
        var r = await Client.RunAsync(spec);
        Assert.Equal("1000\n1000\n/home/vcap\n/home/vcap vcap\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
    }

    [InstallFact]
    public async Task Numeric_user_and_group()
    {
        var spec = Cmd(NewId("uidgid"), "sh", "-c", "id -u; id -g; pwd");
        spec.User = "65534:65534";
        var r = await Client.RunAsync(spec);
        // nobody's home /nonexistent does not exist: the working dir falls back to /
        Assert.Equal("65534\n65534\n/\n", r.Stdout);
    }

    [InstallFact]
    public async Task Root_is_the_default_user_with_default_path()
    {
        var r = await Client.RunAsync(Cmd(NewId("root"), "sh", "-c", "id -u; pwd; echo $PATH"));
        Assert.Equal("0\n/root\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", r.Stdout);
    }

    [InstallFact]
    public async Task Env_is_passed()
    {
        var spec = Cmd(NewId("env"), "sh", "-c", "echo $FOO; echo $HOME");
        spec.Env.Add("FOO=bar baz");
        spec.Env.Add("HOME=/tmp");
        var r = await Client.RunAsync(spec);
        Assert.Equal("bar baz\n/tmp\n", r.Stdout);
    }

    [InstallFact]
    public async Task Rlimit_nofile_is_applied()
    {
        var spec = Cmd(NewId("rlim"), "sh", "-c", "ulimit -n; ulimit -Hn");
        spec.Rlimits.Add(new Rlimit { Name = "nofile", Soft = 123, Hard = 456 });
        var r = await Client.RunAsync(spec);
        Assert.Equal("123\n456\n", r.Stdout);
    }

    [InstallFact]
    public async Task Unknown_rlimit_is_invalid()
    {
        var spec = Cmd(NewId("rlim"), "true");
        spec.Rlimits.Add(new Rlimit { Name = "bogus", Soft = 1, Hard = 1 });
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SpawnAsync(spec, None));
        Assert.Equal(ErrorCode.Invalid, e.Code);
        Assert.Contains("bogus", e.Message);
    }

    /// <summary>A reader ends at a poll that finds nothing left to read (no read buffer taken for an EOF): what a process
    /// wrote right before it exited (the writer closed with bytes still in the pipe, or in the pty) still arrives whole.</summary>
    [InstallFact]
    public async Task The_last_output_before_an_exit_arrives_whole_on_pipes_and_on_a_pty()
    {
        for (int i = 0; i < 20; i++)
        {
            var r = await Client.RunAsync(Cmd(NewId("last"), "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; printf END >&2"));
            Assert.Equal(new string('x', 300_000), r.Stdout);
            Assert.Equal("END", r.Stderr);

            var spec = Cmd(NewId("lasttty"), "printf", "no newline at the end");
            spec.Tty = true;
            var t = await Client.RunAsync(spec);
            Assert.Equal("no newline at the end", t.Stdout);
            Assert.Equal(0, t.ExitCode);
        }
    }

    [InstallFact]
    public async Task Tty_is_a_pty_with_the_requested_size()
    {
        var spec = Cmd(NewId("tty"), "sh", "-c", "tty; stty size");
        spec.Tty = true;
        spec.Rows = 33;
        spec.Cols = 101;
        var r = await Client.RunAsync(spec);
        Assert.Matches(@"^/dev/pts/\d+\r?\n33 101\r?\n$", r.Stdout);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.ExitCode);
    }

    [InstallFact]
    public async Task Tty_resize_and_input()
    {
        var spec = Cmd(NewId("ttyrs"), "sh", "-c", "read x; echo got $x; stty size");
        spec.Tty = true;
        spec.Rows = 24;
        spec.Cols = 80;
        spec.KeepStdin = true;
        using var cts = new CancellationTokenSource(20_000);
        await using var s = await Client.SpawnAttachedAsync(spec, cts.Token);
        await s.ResizeAsync(50, 132, cts.Token);
        await s.WriteStdinAsync("hello\n"u8.ToArray(), cts.Token);
        var r = await s.CollectAsync(cts.Token);
        Assert.Contains("got hello", r.Stdout);
        Assert.Contains("50 132", r.Stdout);
    }

    [InstallFact]
    public async Task SetTty_resizes_a_detached_process_terminal_and_refuses_one_without()
    {
        var id = NewId("settty");
        var spec = Cmd(id, "sh", "-c", "read x; stty size");
        spec.Tty = true;
        spec.Rows = 24;
        spec.Cols = 80;
        spec.KeepStdin = true;
        using var cts = new CancellationTokenSource(20_000);
        await using var s = await Client.SpawnAttachedAsync(spec, cts.Token);
        await Client.SetTtyAsync(id, 41, 99, cts.Token);   // from another connection, as the daemon's SetTty does
        await s.WriteStdinAsync("go\n"u8.ToArray(), cts.Token);
        var r = await s.CollectAsync(cts.Token);
        Assert.Contains("41 99", r.Stdout);

        var plain = NewId("notty");
        await Client.SpawnAsync(Cmd(plain, "sleep", "5"), cts.Token);
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.SetTtyAsync(plain, 10, 10, cts.Token));
        Assert.Equal(ErrorCode.Invalid, e.Code);
        Assert.Contains("no terminal", e.Message);
        await Client.SignalAsync(plain, 9, cts.Token);
        var missing = await Assert.ThrowsAsync<AgentException>(() => Client.SetTtyAsync(NewId("nope"), 10, 10, cts.Token));
        Assert.Equal(ErrorCode.NotFound, missing.Code);
    }

    [InstallFact]
    public async Task Several_processes_at_once()
    {
        var runs = Enumerable.Range(0, 16).Select(i =>
            Client.RunAsync(Cmd(NewId($"par{i}"), "sh", "-c", $"sleep 0.2; echo {i}; exit {i}"))).ToArray();
        var results = await Task.WhenAll(runs);
        for (int i = 0; i < results.Length; i++)
        {
            Assert.Equal($"{i}\n", results[i].Stdout);
            Assert.Equal(i, results[i].ExitCode);
        }
    }

    [InstallFact]
    public async Task Attach_after_exit_replays_output_and_exit_code()
    {
        var id = NewId("replay");
        var spawned = await Client.SpawnAsync(Cmd(id, "sh", "-c", "echo hello; echo oops >&2; exit 3"), None);
        Assert.Equal(id, spawned.Id);
        await WaitExitedAsync(id);

        var entry = (await Client.ListAsync(None)).Single(p => p.Id == id);
        Assert.True(entry.Exited);
        Assert.Equal(3, entry.Exit.ExitCode);
        Assert.Equal(11ul, entry.OutputEnd);

        for (int i = 0; i < 2; i++)
        {
            await using var s = await Client.AttachAsync(id, 0, None);
            var r = await s.CollectAsync(new CancellationTokenSource(10_000).Token);
            Assert.Equal("hello\n", r.Stdout);
            Assert.Equal("oops\n", r.Stderr);
            Assert.Equal(3, r.ExitCode);
        }

        // from an offset inside the output: exactly the bytes from there (stdout and stderr interleave in arrival order)
        await using (var s = await Client.AttachAsync(id, 7, None))
        {
            var r = await s.CollectAsync(new CancellationTokenSource(10_000).Token);
            Assert.Equal(4, r.Output.Length);
            var first = r.Events.First(e => e.KindCase == AgentEvent.KindOneofCase.Output);
            Assert.Equal(7ul, first.Output.Offset);
            Assert.Equal(3, r.ExitCode);
        }
    }

    [InstallFact]
    public async Task Background_grandchild_holding_the_pipe_does_not_delay_exit_for_long()
    {
        var started = DateTime.UtcNow;
        var r = await Client.RunAsync(Cmd(NewId("bg"), "sh", "-c", "sleep 5 & echo hi"));
        Assert.Equal("hi\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(4), $"took {DateTime.UtcNow - started}");
    }

    [InstallFact]
    public async Task Zombies_are_reaped()
    {
        var r = await Client.RunAsync(Cmd(NewId("zomb"), "sh", "-c", "sleep 0 & exec sleep 0.3"));
        Assert.Equal(0, r.ExitCode);
        string states = "";
        for (int i = 0; i < 50; i++)
        {
            var ps = await Client.RunAsync(Cmd(NewId("ps"), "sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"));
            states = ps.Stdout;
            if (!states.Split('\n').Any(l => l.Contains(") Z "))) return;
            await Task.Delay(20);
        }
        Assert.Fail($"zombies left: {states}");
    }

    [InstallFact]
    public async Task Child_has_empty_signal_mask_and_default_dispositions()
    {
        var r = await Client.RunAsync(Cmd(NewId("sig"), "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"));
        Assert.Equal("SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n", r.Stdout);
    }

    [InstallFact]
    public async Task Child_is_session_leader_and_inherits_no_agent_fds()
    {
        var r = await Client.RunAsync(Cmd(NewId("fds"), "sh", "-c", "ls /proc/self/fd; cut -d' ' -f6 /proc/self/stat; echo $$"));
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // ls sees 0,1,2 and its own directory fd (3)
        Assert.Equal(["0", "1", "2", "3"], lines[..4]);
        Assert.Equal(lines[5], lines[4]); // cut runs in sh's session, whose id is sh's pid: sh is the session leader
    }

    [InstallFact]
    public async Task Malformed_frame_gets_invalid_and_the_agent_keeps_serving()
    {
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await s.ConnectAsync(new UnixDomainSocketEndPoint(agent.SocketPath));
            await s.SendAsync(new byte[] { 0, 0, 0, 3, 0xff, 0xff, 0xff });
            var ev = await ReadEventAsync(s);
            Assert.Equal(AgentEvent.KindOneofCase.Error, ev.KindCase);
            Assert.Equal(ErrorCode.Invalid, ev.Error.Code);
        }
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await s.ConnectAsync(new UnixDomainSocketEndPoint(agent.SocketPath));
            await s.SendAsync(new byte[] { 0x7f, 0, 0, 0 }); // 2 GiB frame
            var ev = await ReadEventAsync(s);
            Assert.Equal(ErrorCode.Invalid, ev.Error.Code);
        }
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await s.ConnectAsync(new UnixDomainSocketEndPoint(agent.SocketPath));
            await s.SendAsync(new byte[] { 0, 0 }); // half a header, then gone
        }
        Assert.Equal(1, (await Client.PingAsync(None)).AgentPid);
    }

    [InstallFact]
    public async Task Daemon_disconnecting_mid_stream_does_not_hurt_the_agent()
    {
        var id = NewId("yes");
        await using (var s = await Client.SpawnAttachedAsync(Cmd(id, "yes"), None))
        {
            var ev = await s.ReadAsync(None);
            Assert.Equal(AgentEvent.KindOneofCase.Output, ev!.KindCase);
        }
        Assert.Equal(1, (await Client.PingAsync(None)).AgentPid);
        await Client.SignalAsync(id, 9, None);
        await WaitExitedAsync(id);
        var r = await Client.RunAsync(Cmd(NewId("after"), "echo", "ok"));
        Assert.Equal("ok\n", r.Stdout);
    }

    [InstallFact]
    public async Task Many_concurrent_connections()
    {
        var pings = Enumerable.Range(0, 200).Select(_ => Client.PingAsync(None)).ToArray();
        await Task.WhenAll(pings);
        Assert.All(pings, p => Assert.Equal(1, p.Result.AgentPid));
    }

    [InstallFact]
    public async Task Several_attached_readers_each_get_the_full_stream()
    {
        var id = NewId("multi");
        var spec = Cmd(id, "sh", "-c", "read x; seq 1 20000");
        spec.KeepStdin = true;
        spec.BufferBytes = 1 << 20;
        await using var owner = await Client.SpawnAttachedAsync(spec, None);
        await using var a = await Client.AttachAsync(id, 0, None);
        await using var b = await Client.AttachAsync(id, 0, None);
        await owner.WriteStdinAsync("go\n"u8.ToArray(), None);
        var expected = string.Concat(Enumerable.Range(1, 20000).Select(i => i + "\n"));
        var results = await Task.WhenAll(owner.CollectAsync(None), a.CollectAsync(None), b.CollectAsync(None));
        Assert.All(results, r => Assert.Equal(expected, r.Stdout));
    }

    internal async Task WaitExitedAsync(string id)
    {
        for (int i = 0; i < 500; i++)
        {
            var e = (await Client.ListAsync(None)).FirstOrDefault(p => p.Id == id);
            if (e is { Exited: true }) return;
            await Task.Delay(10);
        }
        Assert.Fail($"process {id} did not exit");
    }

    private static async Task<AgentEvent> ReadEventAsync(Socket s)
    {
        var header = new byte[4];
        await ReadExactlyAsync(s, header);
        int size = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header);
        var body = new byte[size];
        await ReadExactlyAsync(s, body);
        return AgentEvent.Parser.ParseFrom(body);
    }

    private static async Task ReadExactlyAsync(Socket s, byte[] buf)
    {
        int got = 0;
        using var cts = new CancellationTokenSource(10_000);
        while (got < buf.Length)
        {
            int n = await s.ReceiveAsync(buf.AsMemory(got), SocketFlags.None, cts.Token);
            if (n == 0) throw new EndOfStreamException();
            got += n;
        }
    }
}
