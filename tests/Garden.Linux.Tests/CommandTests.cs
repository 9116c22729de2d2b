using Garden.Linux.Process;
using Xunit;

namespace Garden.Linux.Tests;

public sealed class CommandTests
{
    [Fact]
    public async Task Captures_stdout_stderr_and_the_exit_code()
    {
        var r = await Command.RunAsync("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"]);
        Assert.Equal(3, r.ExitCode);
        Assert.Equal("out\n", r.Stdout);
        Assert.Equal("err\n", r.Stderr);
    }

    [Fact]
    public async Task A_signal_death_is_128_plus_the_signal()
    {
        var r = await Command.RunAsync("/bin/sh", ["-c", "kill -9 $$"]);
        Assert.Equal(137, r.ExitCode);
    }

    [Fact]
    public async Task The_child_gets_an_empty_signal_mask_and_dev_null_stdin()
    {
        var r = await Command.RunAsync("/bin/sh", ["-c", "grep SigBlk /proc/self/status; cat"]);
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("SigBlk:\t0000000000000000\n", r.Stdout);
    }

    [Fact]
    public async Task Output_can_go_to_files()
    {
        var dir = Garden.Testing.TestPaths.NewTempDir("cmd");
        try
        {
            var err = Path.Combine(dir, "err");
            var r = await Command.RunAsync("/bin/sh", ["-c", "echo hidden; echo problem >&2; exit 1"], new CommandOutput("/dev/null", err));
            Assert.Equal(1, r.ExitCode);
            Assert.Equal("", r.Stdout);
            Assert.Equal("problem\n", r.Stderr);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task A_missing_program_is_an_error_naming_it()
    {
        var e = await Assert.ThrowsAsync<Garden.Linux.Interop.LinuxException>(() => Command.RunAsync("/no/such/program", []));
        Assert.Contains("/no/such/program", e.Message);
        Assert.Contains("No such file", e.Message);
    }

    [Fact]
    public async Task Megabytes_on_stdout_and_stderr_at_once_all_arrive_in_order()
    {
        // more than a pipe holds on both at once: a reader that waited on one pipe alone would deadlock the child
        var r = await Command.RunAsync("/bin/sh", ["-c", "i=0; while [ $i -lt 20000 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; exit 7"]);
        Assert.Equal(7, r.ExitCode);
        var outLines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var errLines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(Enumerable.Range(0, 20000).Select(i => $"out-{i}"), outLines);
        Assert.Equal(Enumerable.Range(0, 20000).Select(i => $"err-{i}"), errLines);
    }

    [Fact]
    public async Task Many_commands_at_once_each_get_their_own_result_and_no_thread_of_their_own()
    {
        // 40 commands running together are followed by one thread ("commands"), not three each (two pipe readers and a
        // waiter, made and ended per command as before: +120 threads here). Fewer than one per command leaves room for
        // the threads of the tests running beside this one.
        await Command.RunAsync("/bin/true", []);
        var before = Threads();
        var running = Enumerable.Range(0, 40)
            .Select(i => Command.RunAsync("/bin/sh", ["-c", $"sleep 0.5; echo out-{i}; echo err-{i} >&2; exit {i % 5}"]))
            .ToList();
        await Task.Delay(250);
        var during = Threads();
        var results = await Task.WhenAll(running);
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(i % 5, results[i].ExitCode);
            Assert.Equal($"out-{i}\n", results[i].Stdout);
            Assert.Equal($"err-{i}\n", results[i].Stderr);
        }
        Assert.True(during.Count < before.Count + 40, $"threads before: {before.Count}, while 40 commands ran: {during.Count}");
        Assert.Single(during, name => name == "commands");
    }

    private static List<string> Threads() =>
        Directory.GetDirectories("/proc/self/task").Select(t => File.ReadAllText(Path.Combine(t, "comm")).Trim()).ToList();
}
