using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Akka.Configuration;
using Garden.Actors;
using Garden.Host;
using Garden.Host.Operations;
using Microsoft.Extensions.Logging;

namespace Garden.GardenHttp.Tests;

/// <summary>gardend's operations pieces without a daemon: systemd's notify protocol, the unit file, JSON log lines, the
/// Prometheus families and the metrics listener's address rule.</summary>
public sealed class OperationsUnitTests
{
    private static string RepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "Garden.Actors.sln"))) dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("no repo root");
        return dir;
    }

    // ---- sd_notify ----

    /// <summary>One test at a time touches NOTIFY_SOCKET in this process's environment.</summary>
    private static readonly SemaphoreSlim EnvironmentLock = new(1, 1);

    private static async Task<string> NotifyThrough(string notifySocket, EndPoint bindTo)
    {
        using var systemd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        systemd.Bind(bindTo);
        await EnvironmentLock.WaitAsync();
        SdNotify? notify;
        try
        {
            Environment.SetEnvironmentVariable(SdNotify.Variable, notifySocket);
            notify = SdNotify.FromEnvironment();
            Assert.Null(Environment.GetEnvironmentVariable(SdNotify.Variable)); // children never inherit it
        }
        finally
        {
            EnvironmentLock.Release();
        }
        Assert.NotNull(notify);
        using (notify)
            notify.Send("READY=1", "STATUS=serving");
        var buffer = new byte[1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var n = await systemd.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Fact]
    public async Task Notify_sends_one_datagram_of_lines_to_a_socket_path()
    {
        var dir = Directory.CreateTempSubdirectory("garden-test-notify-").FullName;
        try
        {
            var path = Path.Combine(dir, "notify.sock");
            Assert.Equal("READY=1\nSTATUS=serving\n", await NotifyThrough(path, new UnixDomainSocketEndPoint(path)));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task Notify_reaches_an_abstract_socket_written_with_an_at_sign()
    {
        var name = "garden-test-notify-" + Guid.NewGuid().ToString("N");
        Assert.Equal("READY=1\nSTATUS=serving\n", await NotifyThrough("@" + name, new UnixDomainSocketEndPoint("\0" + name)));
    }

    [Fact]
    public async Task Without_a_unix_notify_socket_nothing_is_sent()
    {
        await EnvironmentLock.WaitAsync();
        try
        {
            foreach (var value in new[] { "", "relative/path", "vsock:2:1234" })
            {
                Environment.SetEnvironmentVariable(SdNotify.Variable, value);
                Assert.Null(SdNotify.FromEnvironment());
            }
            Environment.SetEnvironmentVariable(SdNotify.Variable, null);
            Assert.Null(SdNotify.FromEnvironment());
        }
        finally
        {
            Environment.SetEnvironmentVariable(SdNotify.Variable, null);
            EnvironmentLock.Release();
        }
    }

    // ---- the unit file ----

    private static (int Code, string Output) Verify(string unitText)
    {
        var dir = Directory.CreateTempSubdirectory("garden-test-unit-").FullName;
        try
        {
            // the prefix make install would use, with an executable gardend (verify checks ExecStart's binary)
            Directory.CreateDirectory(Path.Combine(dir, "bin"));
            File.WriteAllText(Path.Combine(dir, "bin", "gardend"), "#!/bin/sh\n");
            File.SetUnixFileMode(Path.Combine(dir, "bin", "gardend"), (UnixFileMode)0b111_101_101);
            var unit = Path.Combine(dir, "gardend.service");
            File.WriteAllText(unit, unitText.Replace("@PREFIX@", dir));
            var psi = new ProcessStartInfo("systemd-analyze", ["verify", unit]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            return (p.ExitCode, (stdout.Result + stderr.Result).Replace(dir, "PREFIX"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void The_unit_file_keeps_containers_across_a_restart()
    {
        var text = File.ReadAllText(Path.Combine(RepoRoot(), "dist", "gardend.service.in"));
        var settings = text.Split('\n').Where(l => l.Contains('=') && !l.StartsWith('#')).ToList();
        Assert.Contains("Type=notify", settings);
        Assert.Contains("KillMode=process", settings);   // only gardend is signalled: containers survive stop/restart
        Assert.Contains("Restart=on-failure", settings);
        Assert.Contains("ExecStart=@PREFIX@/bin/gardend --config /etc/garden-actors/gardend.conf", settings);
    }

    [SystemdAnalyzeFact]
    public void The_unit_file_verifies()
    {
        var (code, output) = Verify(File.ReadAllText(Path.Combine(RepoRoot(), "dist", "gardend.service.in")));
        Assert.True(code == 0 && output.Trim().Length == 0, $"systemd-analyze verify: exit {code}\n{output}");
    }

    [SystemdAnalyzeFact]
    public void Verify_does_complain_about_a_broken_unit()
    {
        var text = File.ReadAllText(Path.Combine(RepoRoot(), "dist", "gardend.service.in"));
        var (_, output) = Verify(text.Replace("KillMode=process", "KillMode=sometimes"));
        Assert.Contains("kill mode", output); // the check above would see this
    }

    // ---- JSON logs ----

    private static List<JsonElement> Lines(MemoryStream stream) =>
        [.. Encoding.UTF8.GetString(stream.ToArray()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];

    [Fact]
    public void A_containers_log_entry_is_one_json_line_with_its_handle_and_operation()
    {
        var (stdout, stderr) = (new MemoryStream(), new MemoryStream());
        var log = new JsonLog(stdout, stderr);
        var logger = new JsonLoggerProvider(log).CreateLogger(AkkaLogger.Category);
        List<KeyValuePair<string, object?>> state = [new("LogSource", "container demo"), new("ActorPath", "akka://garden/user/containers/demo")];
        logger.Log(LogLevel.Information, default, state, null, (_, _) => "[container demo] create finished in 95.1 ms");
        logger.Log(LogLevel.Warning, default, state, new InvalidOperationException("boom"), (_, _) => "[container demo] rootfs (idmapped base) failed after 3.0 ms: boom");
        logger.Log(LogLevel.Information, default, state, null, (_, _) => "[container demo] process p1 exited with 0");

        var lines = Lines(stdout);
        Assert.Equal(3, lines.Count);
        Assert.Equal("info", lines[0].GetProperty("level").GetString());
        Assert.Equal("create finished in 95.1 ms", lines[0].GetProperty("message").GetString());
        Assert.Equal("demo", lines[0].GetProperty("handle").GetString());
        Assert.Equal("create", lines[0].GetProperty("operation").GetString());
        Assert.Equal("Akka", lines[0].GetProperty("category").GetString());
        Assert.True(DateTimeOffset.TryParse(lines[0].GetProperty("timestamp").GetString(), out var at));
        Assert.True(Math.Abs((DateTimeOffset.UtcNow - at).TotalMinutes) < 5);
        Assert.Equal("warning", lines[1].GetProperty("level").GetString());
        Assert.Equal("rootfs", lines[1].GetProperty("operation").GetString());
        Assert.Contains("boom", lines[1].GetProperty("exception").GetString());
        Assert.False(lines[2].TryGetProperty("operation", out _)); // not a step
        Assert.Equal("demo", lines[2].GetProperty("handle").GetString());
        Assert.Equal(0, stderr.Length);
    }

    [Fact]
    public void Plain_console_lines_become_json_lines_on_their_own_stream()
    {
        var (stdout, stderr) = (new MemoryStream(), new MemoryStream());
        var log = new JsonLog(stdout, stderr);
        var outWriter = log.Lines("info", toStderr: false);
        outWriter.WriteLine("gardend 0.1.0 serving on unix:/run/g.sock");
        outWriter.Write("gardend: metrics at ");
        outWriter.WriteLine("http://127.0.0.1:1/metrics");
        log.Lines("error", toStderr: true).WriteLine("gardend: a \"quoted\"\tthing");
        var lines = Lines(stdout);
        Assert.Equal(2, lines.Count);
        Assert.Equal("gardend 0.1.0 serving on unix:/run/g.sock", lines[0].GetProperty("message").GetString());
        Assert.Equal("metrics at http://127.0.0.1:1/metrics", lines[1].GetProperty("message").GetString());
        Assert.False(lines[1].TryGetProperty("handle", out _));
        var err = Assert.Single(Lines(stderr));
        Assert.Equal("error", err.GetProperty("level").GetString());
        Assert.Equal("a \"quoted\"\tthing", err.GetProperty("message").GetString());
    }

    // ---- Prometheus ----

    [Fact]
    public async Task The_families_told_by_the_actors_and_the_api_core_are_exported()
    {
        var metrics = new PrometheusMetrics();
        metrics.ContainersByState(ContainerCensus.Count([ContainerLifecycle.Active, ContainerLifecycle.Active, ContainerLifecycle.Broken]));
        metrics.Operation("run", TimeSpan.FromMilliseconds(3), null);
        metrics.Operation("info", TimeSpan.FromMilliseconds(1), "NotFound");
        metrics.Journaled("container", 2);
        metrics.Recovered(3, 1, 0, 0, TimeSpan.FromSeconds(1.5));
        metrics.OomKilled("h");
        metrics.AgentCall("spawn", TimeSpan.FromMilliseconds(2), failed: false);
        metrics.AgentCall("ping", TimeSpan.FromSeconds(5), failed: true);
        using var buffer = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(buffer);
        var text = Encoding.UTF8.GetString(buffer.ToArray());
        foreach (var sample in new[]
                 {
                     "garden_containers{state=\"active\"} 2", "garden_containers{state=\"broken\"} 1", "garden_containers{state=\"creating\"} 0",
                     "garden_operation_duration_seconds_count{operation=\"run\"} 1", "garden_operation_errors_total{operation=\"info\",code=\"NotFound\"} 1",
                     "garden_journal_writes_total{writer=\"container\"} 2", "garden_journal_writes_total{writer=\"host\"} 0",
                     "garden_recoveries_total 1", "garden_recovered_containers{outcome=\"reattached\"} 3", "garden_recovery_duration_seconds 1.5",
                     "garden_oom_kills_total 1", "garden_agent_round_trip_seconds_count{call=\"spawn\"} 1", "garden_agent_call_errors_total{call=\"ping\"} 1",
                 })
            Assert.Contains("\n" + sample + "\n", text);
    }

    private static Config Conf(string hocon) => ConfigurationFactory.ParseString(hocon);

    [Fact]
    public void The_metrics_listener_is_off_by_default_and_loopback_unless_allowed()
    {
        Assert.Null(MetricsDoor.FromConfig(Conf("garden.metrics.address = \"\"")));
        Assert.Equal(9464, MetricsDoor.FromConfig(Conf("garden.metrics.address = \"127.0.0.1:9464\""))!.EndPoint.Port);
        var open = Assert.Throws<StartupFailure>(() => MetricsDoor.FromConfig(Conf("garden.metrics.address = \"0.0.0.0:9464\"")));
        Assert.Equal(2, open.ExitCode);
        Assert.Contains("garden.metrics.address", open.Message);
        Assert.Contains("not a loopback", open.Message);
        Assert.Contains("garden.metrics.allow-non-loopback = on", open.Message);
        Assert.NotNull(MetricsDoor.FromConfig(Conf("garden.metrics {\n address = \"0.0.0.0:9464\"\n allow-non-loopback = on\n}")));
        // the Garden HTTP door's allow flag is not the metrics' one
        Assert.Throws<StartupFailure>(() => MetricsDoor.FromConfig(Conf("garden.metrics.address = \"0.0.0.0:9464\"\ngarden.garden-http.allow-non-loopback = on")));
        Assert.Throws<StartupFailure>(() => MetricsDoor.FromConfig(Conf("garden.metrics.address = \"/run/metrics.sock\"")));
    }

    [Fact]
    public void Gardend_flags_version_and_log_format()
    {
        Assert.Throws<VersionRequested>(() => GardendOptions.Parse(["--version"]));
        Assert.Equal("json", GardendOptions.Parse(["--log-format", "json"]).BuildConfig().GetString("garden.log.format"));
        Assert.Equal("text", GardendOptions.Parse([]).BuildConfig().GetString("garden.log.format"));
        Assert.Matches(@"\A[0-9]+\.[0-9]+\.[0-9]+", GardendVersion.Text);
    }
}

/// <summary>A test that runs systemd-analyze: skipped, saying so, where it is not installed.</summary>
public sealed class SystemdAnalyzeFactAttribute : FactAttribute
{
    public SystemdAnalyzeFactAttribute()
    {
        if (!new[] { "/usr/bin/systemd-analyze", "/bin/systemd-analyze" }.Any(File.Exists))
            Skip = "systemd-analyze is not installed (Debian: apt-get install systemd): the unit file is not verified here";
    }
}

/// <summary>gardend gives the native heap's free pages back after it did something, and leaves an idle heap alone.</summary>
public sealed class NativeHeapTrimmerTests
{
    private sealed class CountingHeap : Garden.Linux.Host.INativeHeap
    {
        public int Trims;

        public bool Trim()
        {
            Trims++;
            return true;
        }
    }

    [Fact]
    public void It_trims_once_after_activity_and_not_while_idle()
    {
        var heap = new CountingHeap();
        long activity = 5;
        var trimmer = new NativeHeapTrimmer(heap, TimeSpan.FromHours(1), () => activity);
        trimmer.Tick(); // the first look: what start-up did
        Assert.Equal(1, heap.Trims);
        trimmer.Tick();
        trimmer.Tick();
        Assert.Equal(1, heap.Trims); // idle: nothing to give back
        activity += 3;
        trimmer.Tick();
        Assert.Equal(2, heap.Trims);
        trimmer.Tick();
        Assert.Equal(2, heap.Trims);
    }

    [Fact]
    public async Task Started_it_looks_on_its_own_with_the_runtime_s_counters()
    {
        var heap = new CountingHeap();
        var trimmer = new NativeHeapTrimmer(heap, TimeSpan.FromMilliseconds(20));
        await trimmer.StartAsync(default);
        try
        {
            Assert.True(SpinWait.SpinUntil(() => heap.Trims >= 1, 5000), "no trim");
        }
        finally
        {
            await trimmer.StopAsync(default);
        }
    }
}
