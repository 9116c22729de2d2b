using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>Processes in one shared container, driven through the CLI.</summary>
public sealed class ProcessTests(ProcessTests.Container fx) : IClassFixture<ProcessTests.Container>
{
    public sealed class Container : IAsyncLifetime
    {
        public DaemonFixture Fixture { get; } = new();
        public string Handle { get; } = $"proc-{Guid.NewGuid():N}"[..13];

        public async Task InitializeAsync()
        {
            await Fixture.InitializeAsync();
            if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return; // its tests are skipped
            var r = await Fixture.Daemon.CliAsync("create", "--handle", Handle, "--env", "CONTAINER_VAR=from-spec");
            if (r.ExitCode != 0) throw new InvalidOperationException(r.ToString());
        }

        public Task DisposeAsync() => Fixture.DisposeAsync();
    }

    private Gardend D => fx.Fixture.Daemon;
    private string H => fx.Handle;

    [InstallFact]
    public async Task Echo_prints_and_exits_zero()
    {
        var r = await D.CliAsync("run", H, "--", "echo", "hi");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("hi\n", r.Stdout);
    }

    [InstallFact]
    public async Task Stdin_reaches_the_process()
    {
        var r = await D.CliAsync(["run", H, "--", "cat"], stdin: "x\nsecond line\n");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("x\nsecond line\n", r.Stdout);
    }

    [InstallFact]
    public async Task The_exit_code_is_the_process_exit_code()
    {
        Assert.Equal(7, (await D.CliAsync("run", H, "--", "sh", "-c", "exit 7")).ExitCode);
        Assert.Equal(137, (await D.CliAsync("run", H, "--", "sh", "-c", "kill -9 $$")).ExitCode);
    }

    [InstallFact]
    public async Task Stdout_and_stderr_stay_apart()
    {
        var r = await D.CliAsync("run", H, "--", "sh", "-c", "echo out; echo err >&2");
        Assert.Equal("out\n", r.Stdout);
        Assert.Equal("err\n", r.Stderr);
    }

    [InstallFact]
    public async Task Detach_then_attach_from_another_client_replays_from_offset_zero()
    {
        var detach = await D.CliAsync("run", H, "--detach", "--id", "counter", "--", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done; exit 4");
        Assert.Equal(0, detach.ExitCode);
        Assert.Equal("counter", detach.Stdout.Trim());
        var attach = await D.CliAsync("attach", H, "counter");
        Assert.Equal(4, attach.ExitCode);
        Assert.Equal("line 1\nline 2\nline 3\n", attach.Stdout);
        // again, after it ended: the output and the exit code are still there
        var again = await D.CliAsync("attach", H, "counter", "--from", "7");
        Assert.Equal(4, again.ExitCode);
        Assert.Equal("line 2\nline 3\n", again.Stdout);
    }

    [InstallFact]
    public async Task A_generated_process_id_is_printed_on_detach()
    {
        var r = await D.CliAsync("run", H, "--detach", "--", "true");
        Assert.Matches("^[a-z0-9]{11}$", r.Stdout.Trim());
    }

    [InstallFact]
    public async Task Several_processes_run_at_once_and_the_container_outlives_them()
    {
        var runs = Enumerable.Range(0, 6).Select(i => D.CliAsync("run", H, "--", "sh", "-c", $"sleep 0.3; echo {i}")).ToList();
        var results = await Task.WhenAll(runs);
        for (var i = 0; i < 6; i++) Assert.Equal($"{i}\n", results[i].Stdout);
        Assert.Equal("after\n", (await D.CliAsync("run", H, "--", "echo", "after")).Stdout);
    }

    [InstallFact]
    public async Task User_by_name_or_uid_and_home_directory_as_default_dir()
    {
        var vcap = await D.CliAsync("run", H, "--user", "vcap", "--", "sh", "-c", "id -u; id -g; pwd; echo $HOME");
        Assert.Equal("1000\n1000\n/home/vcap\n/home/vcap\n", vcap.Stdout);
        var uid = await D.CliAsync("run", H, "--user", "1234:5678", "--", "sh", "-c", "id -u; id -g");
        Assert.Equal("1234\n5678\n", uid.Stdout);
        var root = await D.CliAsync("run", H, "--", "sh", "-c", "id -u; pwd");
        Assert.Equal("0\n/root\n", root.Stdout);
        var dir = await D.CliAsync("run", H, "--dir", "/tmp", "--", "pwd");
        Assert.Equal("/tmp\n", dir.Stdout);
    }

    [InstallFact]
    public async Task Environment_comes_from_the_container_and_the_process()
    {
        var r = await D.CliAsync("run", H, "--env", "PROC_VAR=from-run", "--", "sh", "-c", "echo $CONTAINER_VAR $PROC_VAR");
        Assert.Equal("from-spec from-run\n", r.Stdout);
    }

    [InstallFact]
    public async Task Rlimits_apply_to_the_process()
    {
        var r = await D.CliAsync("run", H, "--rlimit", "nofile=123", "--", "sh", "-c", "ulimit -n");
        Assert.Equal("123\n", r.Stdout);
    }

    [InstallFact]
    public async Task Tty_gives_a_terminal_of_the_asked_size()
    {
        var r = await D.CliAsync("run", H, "--tty", "--", "sh", "-c", "tty; stty size");
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"^/dev/pts/\d+\r?\n24 80\r?\n$", r.Stdout);
    }

    [InstallFact]
    public async Task Signal_by_name_reaches_the_process()
    {
        var id = (await D.CliAsync("run", H, "--detach", "--", "sleep", "100")).Stdout.Trim();
        Assert.Equal(0, (await D.CliAsync("signal", H, id, "TERM")).ExitCode);
        Assert.Equal(143, (await D.CliAsync("attach", H, id)).ExitCode);
        var usr = (await D.CliAsync("run", H, "--detach", "--", "sleep", "100")).Stdout.Trim();
        Assert.Equal(0, (await D.CliAsync("signal", H, usr, "9")).ExitCode);
        Assert.Equal(137, (await D.CliAsync("attach", H, usr)).ExitCode);
    }

    [InstallFact]
    public async Task Bad_process_input_gets_its_own_errors()
    {
        var missing = await D.CliAsync("run", H, "--", "/no/such/binary");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("/no/such/binary", missing.Stderr);

        var notExec = await D.CliAsync("run", H, "--", "/etc/passwd");
        Assert.NotEqual(0, notExec.ExitCode);
        Assert.Contains("/etc/passwd", notExec.Stderr);

        var user = await D.CliAsync("run", H, "--user", "nosuchuser", "--", "true");
        Assert.NotEqual(0, user.ExitCode);
        Assert.Contains("nosuchuser", user.Stderr);

        var attach = await D.CliAsync("attach", H, "nosuchprocess");
        Assert.NotEqual(0, attach.ExitCode);
        Assert.Contains("nosuchprocess", attach.Stderr);

        var dup = await D.CliAsync("run", H, "--id", "dup-id", "--", "true");
        Assert.Equal(0, dup.ExitCode);
        var dup2 = await D.CliAsync("run", H, "--id", "dup-id", "--", "true");
        Assert.NotEqual(0, dup2.ExitCode);
        Assert.Contains("already exists", dup2.Stderr);

        Assert.Equal("ok\n", (await D.CliAsync("run", H, "--", "echo", "ok")).Stdout);
    }

    [InstallFact]
    public async Task A_client_that_disconnects_mid_stream_leaves_the_process_and_the_daemon_running()
    {
        using var cli = D.StartCli("run", H, "--id", "ticker", "--", "sh", "-c", "i=0; while [ $i -lt 30 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done");
        cli.StandardInput.Close();
        var first = await cli.StandardOutput.ReadLineAsync();
        Assert.Equal("tick 0", first);
        cli.Kill();
        await cli.WaitForExitAsync();

        Assert.Equal(0, (await D.CliAsync("ping")).ExitCode);
        var attach = await D.CliAsync("attach", H, "ticker");
        Assert.Equal(0, attach.ExitCode);
        var lines = attach.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Enumerable.Range(0, 30).Select(i => $"tick {i}"), lines);
    }

    [InstallFact]
    public async Task Info_lists_running_processes()
    {
        var id = (await D.CliAsync("run", H, "--detach", "--", "sleep", "100")).Stdout.Trim();
        var info = await D.CliAsync("--json", "info", H);
        var ids = System.Text.Json.JsonDocument.Parse(info.Stdout).RootElement.GetProperty("processIds").EnumerateArray().Select(e => e.GetString());
        Assert.Contains(id, ids);
        await D.CliAsync("signal", H, id, "KILL");
    }
}
