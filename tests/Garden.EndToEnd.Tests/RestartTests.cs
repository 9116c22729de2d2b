using System.Text.Json;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>kill -9 the real gardend with containers and processes running, restart it, and check that nothing was lost.
/// Each test has a daemon of its own (they run in parallel with the other classes).</summary>
public sealed class RestartTests
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static async Task<Gardend> Daemon(string extra = "")
    {
        var d = new Gardend(extra);
        await d.StartAsync();
        return d;
    }

    private static async Task Cleanup(Gardend d, params string[] handles)
    {
        foreach (var h in handles) await d.CliAsync("destroy", h);
        await d.DisposeAsync();
        foreach (var h in handles) Assert.Empty(Host.Leftovers(d, h));
    }

    private static JsonElement Json(CliResult r) => JsonDocument.Parse(r.Stdout).RootElement;

    [InstallFact]
    public async Task A_second_gardend_on_the_same_state_dir_or_network_prefix_refuses_to_start_and_the_first_keeps_everything()
    {
        // an operator's mistake, not an attack: a second daemon would write the first's journal, or prune the first's
        // networks and chains at its start as leftovers of its own prefix (and delete the first's socket)
        var first = await Daemon();
        var second = new Gardend($"garden.network.prefix = \"{first.NetworkPrefix}\"");
        var h = Unique("first");
        System.Diagnostics.Process? same = null;
        try
        {
            Assert.Equal(0, (await first.CliAsync("create", "--handle", h)).ExitCode);
            var links = Links(first.NetworkPrefix);
            Assert.NotEmpty(links);

            Assert.NotEqual(0, await second.StartExpectingExitAsync());
            Assert.Contains($"the network prefix \"{first.NetworkPrefix}\" is in use by another gardend", second.Log);

            // the same state dir, its own prefix and socket: refused before it touches anything
            var psi = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                ArgumentList = { TestPaths.GardendDll, "--state-dir", first.StateDir, "--socket", Path.Combine(second.Dir, "other.sock"), "--config", first.ConfigFile },
            };
            same = System.Diagnostics.Process.Start(psi)!;
            var stderr = same.StandardError.ReadToEndAsync();
            var stdout = same.StandardOutput.ReadToEndAsync();
            await same.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            Assert.NotEqual(0, same.ExitCode);
            Assert.Contains($"the state dir {first.StateDir} is in use by another gardend", await stderr + await stdout);

            Assert.True(File.Exists(first.Socket));
            Assert.Equal(links, Links(first.NetworkPrefix));
            Assert.Equal("alive", (await first.CliAsync("run", h, "--", "/bin/echo", "alive")).Stdout.Trim());
        }
        finally
        {
            if (same is { HasExited: false }) same.Kill();
            same?.Dispose();
            await second.DisposeAsync();
            await Cleanup(first, h);
        }
    }

    private static List<string> Links(string prefix) =>
        [.. Directory.GetDirectories("/sys/class/net").Select(d => Path.GetFileName(d)).Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Order()];

    [InstallFact]
    public async Task After_kill_9_every_container_and_process_is_there_output_and_exit_codes_included()
    {
        var d = await Daemon();
        var h = Unique("survive");
        try
        {
            Assert.Equal(0, (await d.CliAsync("create", "--handle", h, "--property", "team=a", "--property", "tier=web")).ExitCode);
            await d.CliAsync("run", h, "--detach", "--id", "lines", "--", "sh", "-c", "i=1; while [ $i -le 40 ]; do echo line $i; i=$((i+1)); sleep 0.1; done; exit 5");
            await d.CliAsync("run", h, "--detach", "--id", "short", "--", "sh", "-c", "sleep 0.5; echo done early; exit 9");
            await d.CliAsync("run", h, "--detach", "--id", "sleeper", "--", "sleep", "1000");
            var before = Json(await d.CliAsync("--json", "info", h));
            await Task.Delay(1000);

            await d.StopAsync(kill: true);
            await Task.Delay(2000);
            await d.StartAsync();

            var attach = await d.CliAsync("attach", h, "lines", "--from", "0");
            Assert.Equal(5, attach.ExitCode);
            Assert.Equal(Enumerable.Range(1, 40).Select(i => $"line {i}"), attach.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));

            var early = await d.CliAsync("attach", h, "short");
            Assert.Equal(9, early.ExitCode); // it ended while no daemon ran
            Assert.Equal("done early\n", early.Stdout);

            var after = Json(await d.CliAsync("--json", "info", h));
            Assert.Equal(before.GetProperty("handle").GetString(), after.GetProperty("handle").GetString());
            Assert.Equal("active", after.GetProperty("state").GetString());
            static IEnumerable<string> Props(JsonElement i) => i.GetProperty("properties").EnumerateObject().Select(p => $"{p.Name}={p.Value}").Order();
            Assert.Equal(Props(before), Props(after));
            Assert.Equal(["team=a", "tier=web"], Props(after));
            Assert.Contains("sleeper", after.GetProperty("processIds").EnumerateArray().Select(e => e.GetString()));

            Assert.Equal(0, (await d.CliAsync("signal", h, "sleeper", "TERM")).ExitCode);
            Assert.Equal(143, (await d.CliAsync("attach", h, "sleeper")).ExitCode);
            Assert.Equal("new process\n", (await d.CliAsync("run", h, "--", "echo", "new process")).Stdout);
            Assert.Contains(h, (await d.CliAsync("list", "--property", "team=a")).Stdout);
        }
        finally
        {
            await Cleanup(d, h);
        }
    }

    [InstallFact]
    public async Task Sigterm_stops_gardend_and_leaves_containers_running()
    {
        var d = await Daemon();
        var h = Unique("term");
        try
        {
            await d.CliAsync("create", "--handle", h);
            await d.CliAsync("run", h, "--detach", "--id", "p", "--", "sh", "-c", "sleep 1; echo still running; exit 2");
            await d.StopAsync(kill: false);
            Assert.Equal(0, d.ExitCode);
            Assert.Contains("gardend stopping; containers keep running", d.Log);
            Assert.False(File.Exists(d.Socket));
            var state = await Command.RunAsync("/usr/sbin/runc", ["state", h]);
            Assert.Contains("\"running\"", state.Stdout);
            await d.StartAsync();
            var attach = await d.CliAsync("attach", h, "p");
            Assert.Equal(2, attach.ExitCode);
            Assert.Equal("still running\n", attach.Stdout);
        }
        finally
        {
            await Cleanup(d, h);
        }
    }

    [InstallTheory]
    [InlineData("create-registered")]
    [InlineData("create-rootfs")]
    [InlineData("create-runtime")]
    public async Task A_daemon_killed_in_the_middle_of_create_leaves_nothing_after_restart(string point)
    {
        var d = new Gardend($"garden.fault.crash-at = \"{point}\"");
        await d.StartAsync();
        var h = Unique("crash");
        try
        {
            var create = await d.CliAsync("create", "--handle", h);
            Assert.NotEqual(0, create.ExitCode);
            await d.WaitForExitAsync();

            d.Configure("");
            await d.StartAsync();
            var info = await d.CliAsync("info", h);
            Assert.Contains("unknown handle", info.Stderr);
            Assert.Empty(Host.Leftovers(d, h));
            // the holder of its user namespace (alive at create-rootfs) went with the daemon that held it
            Assert.Empty(Host.OrphanedHolders());
            Assert.False(Directory.Exists(Path.Combine(d.MountDir, h)));
            Assert.DoesNotContain(h, (await Command.RunAsync("/usr/sbin/runc", ["list", "-q"])).Stdout);
            Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode); // the handle is free again
        }
        finally
        {
            await Cleanup(d, h);
        }
    }

    [InstallTheory]
    [InlineData("destroy-started")]
    [InlineData("destroy-runtime")]
    public async Task A_daemon_killed_in_the_middle_of_destroy_finishes_it_after_restart(string point)
    {
        var d = new Gardend($"garden.fault.crash-at = \"{point}\"");
        await d.StartAsync();
        var h = Unique("halfgone");
        try
        {
            Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode);
            await d.CliAsync("run", h, "--detach", "--", "sleep", "1000");
            Assert.NotEqual(0, (await d.CliAsync("destroy", h)).ExitCode);
            await d.WaitForExitAsync();

            d.Configure("");
            await d.StartAsync();
            Assert.Contains("unknown handle", (await d.CliAsync("info", h)).Stderr);
            Assert.Empty(Host.Leftovers(d, h));
        }
        finally
        {
            await Cleanup(d, h);
        }
    }

    [InstallFact]
    public async Task Containers_whose_runc_state_or_init_vanished_while_down_are_reported_and_can_be_destroyed()
    {
        var d = await Daemon();
        var vanished = Unique("vanish");
        var dead = Unique("dead");
        try
        {
            await d.CliAsync("create", "--handle", vanished);
            await d.CliAsync("create", "--handle", dead);
            await d.StopAsync(kill: true);

            await Command.RunAsync("/usr/sbin/runc", ["kill", vanished, "KILL"]);
            await Task.Delay(200);
            await Command.RunAsync("/usr/sbin/runc", ["delete", "--force", vanished]);
            var deadInit = await Command.RunAsync("/usr/sbin/runc", ["state", dead]);
            var pid = JsonDocument.Parse(deadInit.Stdout).RootElement.GetProperty("pid").GetInt32();
            await Command.RunAsync("/bin/kill", ["-9", pid.ToString()]);
            await Task.Delay(200);

            await d.StartAsync();
            var v = Json(await d.CliAsync("--json", "info", vanished));
            Assert.Equal("broken", v.GetProperty("state").GetString());
            Assert.Contains(v.GetProperty("events").EnumerateArray(), e => e.GetString()!.Contains("runc state vanished"));
            var x = Json(await d.CliAsync("--json", "info", dead));
            Assert.Equal("broken", x.GetProperty("state").GetString());
            Assert.Contains(x.GetProperty("events").EnumerateArray(), e => e.GetString()!.Contains("container init gone"));

            Assert.Equal(0, (await d.CliAsync("destroy", vanished)).ExitCode);
            Assert.Equal(0, (await d.CliAsync("destroy", dead)).ExitCode);
            Assert.Empty(Host.Leftovers(d, vanished));
            Assert.Empty(Host.Leftovers(d, dead));
        }
        finally
        {
            await Cleanup(d, vanished, dead);
        }
    }

    [InstallFact]
    public async Task Destroy_containers_on_start_leaves_a_clean_host()
    {
        var d = await Daemon();
        var a = Unique("clean");
        try
        {
            await d.CliAsync("create", "--handle", a);
            await d.CliAsync("run", a, "--detach", "--", "sleep", "1000");
            await d.StopAsync(kill: true);
            d.Configure("garden.destroy-containers-on-start = on");
            await d.StartAsync();
            Assert.Equal("", (await d.CliAsync("list")).Stdout);
            Assert.Empty(Host.Leftovers(d, a));
        }
        finally
        {
            await Cleanup(d, a);
        }
    }

    [InstallFact]
    public async Task A_corrupt_journal_stops_gardend_with_an_error_naming_the_file()
    {
        var d = new Gardend();
        try
        {
            Directory.CreateDirectory(d.StateDir);
            var journal = Path.Combine(d.StateDir, "journal.db");
            await File.WriteAllTextAsync(journal, "this is not a SQLite database, it is garbage");
            var exit = await d.StartExpectingExitAsync();
            Assert.Equal(3, exit);
            Assert.Contains(journal, d.Log);
            Assert.Contains("journal", d.Log);
        }
        finally
        {
            await d.DisposeAsync();
        }
    }

    /// <summary>A journal SQLite reads (it passes the start's check) but the actors cannot recover from: tables of another
    /// shape. The actor system stops itself (HostActor.JournalUnreadable), and with it the whole daemon, with exit 3.</summary>
    [InstallFact]
    public async Task A_journal_the_actors_cannot_recover_from_stops_gardend_with_exit_3_naming_the_file()
    {
        var d = new Gardend("akka.persistence.journal.sql.recovery-event-timeout = 3s");
        try
        {
            Directory.CreateDirectory(d.StateDir);
            var journal = Path.Combine(d.StateDir, "journal.db");
            using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={journal};Pooling=False"))
            {
                db.Open();
                using var create = db.CreateCommand();
                create.CommandText = "CREATE TABLE journal (x INTEGER); CREATE TABLE snapshot (x INTEGER);";
                create.ExecuteNonQuery();
            }
            Assert.Equal(3, await d.StartExpectingExitAsync());
            Assert.Contains($"the journal {journal} cannot be read", d.Log);
            Assert.False(File.Exists(d.Socket));
        }
        finally
        {
            await d.DisposeAsync();
        }
    }

    /// <summary>One log: Akka's events come out through gardend's logger (one line each, the actor as the source),
    /// never in Akka's own console format; and at SIGTERM the gateway says it stops before the actor system does.</summary>
    [InstallFact]
    public async Task Akka_logs_in_gardend_s_one_log_and_sigterm_stops_the_gateway_before_the_actors()
    {
        var d = await Daemon();
        try
        {
            await d.StopAsync();
            Assert.Equal(0, d.ExitCode);
            var log = d.Log;
            Assert.Matches(@"(?m)^\S+ info: Akka\[0\] \[akka://garden/user/containers\] gardend \S+ recovered 0 container\(s\)", log);
            Assert.DoesNotMatch(@"(?m)^\[(DEBUG|INFO|WARNING|ERROR)\]\[", log);
            var stopping = log.IndexOf("gardend stopping; containers keep running", StringComparison.Ordinal);
            var shutdown = log.IndexOf("CoordinatedShutdown invoked", StringComparison.Ordinal);
            Assert.True(stopping >= 0 && shutdown > stopping, log);
        }
        finally
        {
            await d.DisposeAsync();
        }
    }
}
