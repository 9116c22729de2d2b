using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>The command lines of garden and gardend against a real daemon. garden checks syntax only: a value that reads
/// well but is out of range or does not fit the rest goes to the daemon, whose validator refuses it with one line naming
/// the field and the value (garden's own parser tests show each of these passing through unchanged).</summary>
public sealed class CommandLineTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    [InstallFact]
    public async Task Values_garden_passes_on_are_refused_by_the_daemon_naming_the_field_and_the_value()
    {
        var h = Unique("cli");
        var bad = Unique("clibad");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            (int Exit, string[] Args, string[] Mentions)[] refusals =
            [
                (1, ["create", "--handle", bad, "--net-in", "70000:80"], ["host port", "70000"]),
                (1, ["create", "--handle", bad, "--net-in", "0:0"], ["container port", "0"]),
                (1, ["create", "--handle", bad, "--grace-time", "99999d"], ["grace time"]),
                (1, ["net-in", h, "8080:70000"], ["container port", "70000"]),
                (1, ["net-out", h, "--protocol", "tcp", "--port", "70000"], ["port", "70000"]),
                (1, ["net-out", h, "--protocol", "tcp", "--port", "90-80"], ["port", "90-80"]),
                (1, ["net-out", h, "--network", "10.0.0.0/33"], ["network", "10.0.0.0/33"]),
                (1, ["net-out", h, "--network", "10.0.0.1-::1"], ["network", "::1"]),
                (1, ["net-out", h, "--protocol", "icmp", "--icmp-type", "256"], ["icmp", "256"]),
                (1, ["net-out", h, "--icmp-type", "8"], ["icmp", "all"]),
                (1, ["net-out", h, "--port", "53"], ["port", "all"]),
                (1, ["signal", h, "any", "65"], ["signal", "65"]),
                (1, ["grace-time", h, "99999d"], ["grace time"]),
                (125, ["run", h, "--rlimit", "bogus=1", "--", "true"], ["BOGUS"]),
                (125, ["run", h, "--rlimit", "nofile=20:10", "--", "true"], ["rlimit nofile", "soft limit 20", "hard limit 10"]),
            ];
            foreach (var (exit, args, mentions) in refusals)
            {
                var r = await D.CliAsync(args);
                var what = $"garden {string.Join(' ', args)}: {r}";
                Assert.True(r.ExitCode == exit, $"expected exit {exit}; {what}");
                Assert.Equal("", r.Stdout);
                Assert.True(r.Stderr.StartsWith("garden: ", StringComparison.Ordinal) && r.Stderr.TrimEnd('\n').Split('\n').Length == 1,
                    $"not one line; {what}");
                foreach (var m in mentions)
                    Assert.True(r.Stderr.Contains(m, StringComparison.OrdinalIgnoreCase), $"no '{m}'; {what}");
            }
            Assert.DoesNotContain(bad, (await D.CliAsync("list")).Stdout);
            Assert.Empty(Host.Leftovers(D, bad));
            Assert.Equal("hi\n", (await D.CliAsync("run", h, "--", "echo", "hi")).Stdout);   // the container is fine
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
    }

    [InstallFact]
    public async Task A_syntax_error_is_garden_s_own_one_line_naming_the_argument_and_nothing_reaches_the_daemon()
    {
        var bad = Unique("clisyn");
        foreach (var (args, mention) in new (string[], string)[]
                 {
                     (["create", "--handle", bad, "--memory", "64Q"], "'64Q'"),
                     (["create", "--handle", bad, "--bogus"], "'--bogus'"),
                     (["create", "--handle", bad, "--net-in", "80"], "'80'"),
                 })
        {
            var r = await D.CliAsync(args);
            Assert.True(r.ExitCode == 2 && r.Stderr.Contains(mention) && r.Stderr.TrimEnd('\n').Split('\n').Length == 1, r.ToString());
        }
        var run = await D.CliAsync("run", bad, "--rlimit", "nofile", "--", "true");
        Assert.True(run.ExitCode == 125 && run.Stderr.Contains("'nofile'"), run.ToString());
        Assert.DoesNotContain(bad, (await D.CliAsync("list")).Stdout);
    }

    [InstallFact]
    public async Task Gardend_refuses_a_bad_flag_naming_it_and_exits_2()
    {
        foreach (var (extra, mention) in new (string[], string)[]
                 {
                     (["--bogus"], "unknown argument: --bogus"),
                     (["stray"], "unknown argument: stray"),
                     (["--akka-remote"], "--akka-remote needs a value"),
                     (["--socket", "/tmp/x.sock"], "--socket given more than once"),
                 })
        {
            await using var d = new Gardend { ExtraArgs = extra };
            Assert.Equal(2, await d.StartExpectingExitAsync());
            Assert.Contains(mention, d.Log);
            Assert.False(File.Exists(d.Socket));
        }
    }

    [InstallFact]
    public async Task Gardend_refuses_a_socket_path_it_cannot_use_naming_it_and_exits_1()
    {
        await using var d = new Gardend();
        Directory.CreateDirectory(Path.Combine(d.Socket, "in-the-way"));
        Assert.Equal(1, await d.StartExpectingExitAsync());
        Assert.Contains($"gardend: garden.gateway.socket {d.Socket}: ", d.Log);
    }

    [InstallFact]
    public async Task Gardend_help_lists_its_flags_and_starts_nothing()
    {
        await using var d = new Gardend { ExtraArgs = ["--help"] };
        Assert.Equal(0, await d.StartExpectingExitAsync());
        foreach (var flag in new[] { "--state-dir", "--socket", "--config", "--akka-remote" }) Assert.Contains(flag, d.Log);
        Assert.False(Directory.Exists(d.StateDir));
    }

    [InstallFact]
    public async Task Gardend_flags_win_over_the_config_file()
    {
        // The file names another socket and state dir; the flags (which every test daemon gets) are what it uses.
        await using var d = new Gardend("""
            garden.state-dir = "/nonexistent/garden-state"
            garden.gateway.socket = "/nonexistent/garden.sock"
            """);
        await d.StartAsync();
        Assert.True(File.Exists(d.Socket));
        Assert.True(Directory.Exists(d.StateDir));
        Assert.Contains($"unix:{d.Socket}", d.Log);
    }
}
