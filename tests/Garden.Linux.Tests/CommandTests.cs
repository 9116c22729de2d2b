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
}
