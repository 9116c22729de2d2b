using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>One gardend with its Prometheus listener on (garden.metrics.address on a free loopback port).</summary>
public sealed class MetricsDaemonFixture : IAsyncLifetime
{
    private Gardend? _daemon;

    public int Port { get; private set; }

    public Gardend Daemon => _daemon ?? throw new InvalidOperationException(Gate.Unmet(Needs.Root | Needs.Install) ?? "gardend not started");

    public async Task InitializeAsync()
    {
        if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return;
        Port = RemoteDaemonFixture.FreePort();
        _daemon = new Gardend($"garden.metrics.address = \"127.0.0.1:{Port}\"");
        await _daemon.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_daemon is null) return;
        foreach (var h in (await Daemon.CliAsync("list")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            await Daemon.CliAsync("destroy", h);
        await Daemon.DisposeAsync();
    }
}

/// <summary>Operating gardend: Prometheus metrics scraped over HTTP, versions of both ends.</summary>
public sealed class OperationsTests(MetricsDaemonFixture fx) : IClassFixture<MetricsDaemonFixture>
{
    private Gardend D => fx.Daemon;

    private async Task<string> Scrape()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var response = await http.GetAsync($"http://127.0.0.1:{fx.Port}/metrics");
        Assert.True(response.IsSuccessStatusCode, $"GET /metrics: {(int)response.StatusCode}");
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>The value of one sample (name with its labels as Prometheus writes them, e.g. <c>garden_containers{state="active"}</c>),
    /// or null when the scrape has no such line.</summary>
    private static double? Sample(string scrape, string series)
    {
        foreach (var line in scrape.Split('\n'))
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
                return double.Parse(line[(series.Length + 1)..].Split(' ')[0], CultureInfo.InvariantCulture);
        return null;
    }

    private static double Value(string scrape, string series) =>
        Sample(scrape, series) ?? throw new Xunit.Sdk.XunitException($"no sample {series} in the scrape:\n{scrape}");

    [InstallFact]
    public async Task A_scrape_shows_every_family_with_the_values_of_what_happened()
    {
        var h = "metrics-" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h, "--memory", "32M")).ExitCode);
        try
        {
            // a process that holds 8 MiB in tmpfs (charged to the container's memory) and then a run that is OOM-killed
            Assert.Equal(0, (await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/shm/held", "bs=1M", "count=8")).ExitCode);
            Assert.Equal("hi\n", (await D.CliAsync("run", h, "--", "echo", "hi")).Stdout);
            Assert.Equal(137, (await D.CliAsync("run", h, "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")).ExitCode);
            Assert.NotEqual(0, (await D.CliAsync("info", "no-such-container")).ExitCode); // an operation that fails: NotFound

            var scrape = await Scrape();
            var deadline = DateTime.UtcNow.AddSeconds(10); // the OOM notification arrives on its own thread
            while ((Sample(scrape, "garden_oom_kills_total") ?? 0) < 1 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
                scrape = await Scrape();
            }

            // containers by state
            Assert.True(Value(scrape, "garden_containers{state=\"active\"}") >= 1, "active containers");
            Assert.Equal(0, Value(scrape, "garden_containers{state=\"destroyed\"}"));
            // operations by kind, latency histograms and errors
            Assert.True(Value(scrape, "garden_operation_duration_seconds_count{operation=\"run\"}") >= 3, "run operations counted");
            Assert.True(Value(scrape, "garden_operation_duration_seconds_count{operation=\"create\"}") >= 1, "create counted");
            Assert.True(Value(scrape, "garden_operation_duration_seconds_sum{operation=\"create\"}") > 0, "create took time");
            Assert.True(Value(scrape, "garden_operation_duration_seconds_bucket{operation=\"create\",le=\"+Inf\"}") >= 1);
            Assert.True(Value(scrape, "garden_operation_errors_total{operation=\"info\",code=\"NotFound\"}") >= 1, "the failed info");
            // journal writes and size, recoveries
            Assert.True(Value(scrape, "garden_journal_writes_total{writer=\"container\"}") >= 1);
            Assert.True(Value(scrape, "garden_journal_writes_total{writer=\"host\"}") >= 1);
            Assert.True(Value(scrape, "garden_journal_size_bytes") > 4096, "journal.db is on disk");
            Assert.Equal(1, Value(scrape, "garden_recoveries_total"));
            Assert.NotNull(Sample(scrape, "garden_recovery_duration_seconds"));
            // OOM kills: the daemon's count and the container's
            Assert.True(Value(scrape, "garden_oom_kills_total") >= 1, "OOM kill counted");
            Assert.True(Value(scrape, $"garden_container_oom_kills_total{{handle=\"{h}\"}}") >= 1);
            // per container: memory (the 8 MiB in /dev/shm), its limit, CPU, pids, disk, network
            Assert.True(Value(scrape, $"garden_container_memory_bytes{{handle=\"{h}\"}}") >= 8 * 1024 * 1024, "memory held in tmpfs");
            Assert.Equal(32 * 1024 * 1024, Value(scrape, $"garden_container_memory_limit_bytes{{handle=\"{h}\"}}"));
            Assert.True(Value(scrape, $"garden_container_cpu_seconds_total{{handle=\"{h}\"}}") > 0, "the dd runs used CPU");
            Assert.True(Value(scrape, $"garden_container_pids{{handle=\"{h}\"}}") >= 1, "the agent at least");
            Assert.Equal(1024, Value(scrape, $"garden_container_pids_max{{handle=\"{h}\"}}")); // garden.default-limits.pids
            Assert.NotNull(Sample(scrape, $"garden_container_disk_bytes{{handle=\"{h}\"}}"));
            Assert.NotNull(Sample(scrape, $"garden_container_disk_limit_bytes{{handle=\"{h}\"}}"));
            Assert.NotNull(Sample(scrape, $"garden_container_network_receive_bytes_total{{handle=\"{h}\"}}"));
            Assert.NotNull(Sample(scrape, $"garden_container_network_transmit_bytes_total{{handle=\"{h}\"}}"));
            // agent round trips: every run spawned through the agent
            Assert.True(Value(scrape, "garden_agent_round_trip_seconds_count{call=\"spawn\"}") >= 3, "agent spawns timed");
            Assert.True(Value(scrape, "garden_agent_round_trip_seconds_sum{call=\"spawn\"}") > 0);
            Assert.Contains("# TYPE garden_operation_duration_seconds histogram", scrape);
            Assert.Contains("# TYPE garden_container_cpu_seconds_total counter", scrape);
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
        var after = await Scrape();
        Assert.Null(Sample(after, $"garden_container_memory_bytes{{handle=\"{h}\"}}")); // a destroyed container's series go
        Assert.Null(Sample(after, $"garden_container_cpu_seconds_total{{handle=\"{h}\"}}"));
        Assert.True(Value(after, "garden_operation_duration_seconds_count{operation=\"destroy\"}") >= 1);
    }

    [InstallFact]
    public async Task Garden_version_shows_the_client_and_the_server_and_gardend_version_its_own()
    {
        var r = await D.CliAsync("version");
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Matches(new Regex(@"\Agarden [0-9]+\.[0-9]+\.[0-9]+\S* \(client\)\z"), lines[0]);
        Assert.Matches(new Regex(@"\Agardend [0-9]+\.[0-9]+\.[0-9]+\S* \(server\)\z"), lines[1]);

        var own = await RunGardend("--version");
        Assert.Equal(0, own.ExitCode);
        var gardend = own.Stdout.Trim();
        Assert.Matches(new Regex(@"\Agardend [0-9]+\.[0-9]+\.[0-9]+\S*\z"), gardend);
        Assert.Equal(gardend + " (server)", lines[1]); // the server answered with the version of this build

        var json = JsonDocument.Parse((await D.CliAsync("--json", "version")).Stdout).RootElement;
        Assert.Equal(lines[0]["garden ".Length..^" (client)".Length], json.GetProperty("client").GetString());
        Assert.Equal(gardend["gardend ".Length..], json.GetProperty("server").GetString());
    }

    [InstallFact]
    public async Task Garden_version_without_a_server_prints_its_own_and_fails_naming_the_socket()
    {
        var r = await D.CliAsync("--socket", "/nonexistent/garden.sock", "version");
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith("garden ", r.Stdout);
        Assert.DoesNotContain("gardend", r.Stdout);
        Assert.Contains("/nonexistent/garden.sock", r.Stderr);
    }

    private static async Task<CliResult> RunGardend(params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(TestPaths.GardendDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }
}

/// <summary>gardend under a Type=notify unit: the test plays systemd's part with a datagram socket of its own in
/// NOTIFY_SOCKET, and one container is made meanwhile (runc must not see the variable).</summary>
public sealed class ReadinessTests
{
    [InstallFact]
    public async Task Ready_arrives_once_the_grpc_socket_answers_and_stopping_on_sigterm()
    {
        await using var d = new Gardend();
        var socketPath = Path.Combine(d.Dir, "notify.sock");
        using var systemd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        systemd.Bind(new UnixDomainSocketEndPoint(socketPath));
        d.EnvironmentVariables = new Dictionary<string, string> { ["NOTIFY_SOCKET"] = socketPath };

        var received = new List<string>();
        async Task<string> Next(TimeSpan within)
        {
            using var cts = new CancellationTokenSource(within);
            var buffer = new byte[4096];
            var n = await systemd.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            var text = Encoding.UTF8.GetString(buffer, 0, n);
            received.Add(text);
            return text;
        }

        // Ready means the gRPC socket answers: the first ping after READY=1 succeeds, at once, no retry. Twice: at a
        // first start, and at a restart with a container to recover (until recovered, every request is Unavailable).
        async Task StartAndAwaitReady()
        {
            var starting = d.StartAsync(); // waits until ping answers, in parallel with the notifications
            CliResult pingAtReady;
            while (true)
            {
                var datagram = await Next(TimeSpan.FromSeconds(60));
                Assert.EndsWith("\n", datagram);
                if (!datagram.Split('\n').Contains("READY=1")) continue;
                pingAtReady = await d.CliAsync("ping");
                break;
            }
            await starting;
            Assert.True(pingAtReady.ExitCode == 0, $"ping right after READY=1: {pingAtReady}\nnotifications: {string.Join(" | ", received)}\n{d.Log}");
            Assert.Contains(received, r => r.Contains("STATUS=serving on unix:" + d.Socket));
        }

        async Task StopAndAwaitStopping()
        {
            await d.StopAsync(); // SIGTERM
            Assert.Equal(0, d.ExitCode);
            while (!(await Next(TimeSpan.FromSeconds(5))).Split('\n').Contains("STOPPING=1")) { }
        }

        await StartAndAwaitReady();

        // a container under a gardend started with NOTIFY_SOCKET: runc is given none (it would wait for the container's own)
        var h = "notify-" + Guid.NewGuid().ToString("N")[..8];
        var created = await d.CliAsync(["create", "--handle", h], timeout: TimeSpan.FromSeconds(30));
        Assert.True(created.ExitCode == 0, created.ToString());
        try
        {
            Assert.Equal("ok\n", (await d.CliAsync("run", h, "--", "echo", "ok")).Stdout);

            // KillMode's premise (dist/gardend.service.in): the container's init is in none of gardend's cgroups. In every
            // hierarchy gardend is in (name=systemd and the unified one of a hybrid host included), the agent is in the
            // container's own cgroup, so the unit's cgroup (wherever gardend sits) never holds it.
            var agent = AgentOf(d, h);
            var own = File.ReadAllLines($"/proc/{d.Pid}/cgroup").Select(l => l[..l.LastIndexOf(':')]).Order().ToList();
            var agents = File.ReadAllLines($"/proc/{agent}/cgroup");
            Assert.Equal(own, agents.Select(l => l[..l.LastIndexOf(':')]).Order().ToList());
            Assert.All(agents, l => Assert.EndsWith($":/{d.CgroupParent}/{h}", l));

            await StopAndAwaitStopping();
            received.Clear();
            await StartAndAwaitReady(); // recovers the container first
            Assert.Contains(h, (await d.CliAsync("list")).Stdout);
            Assert.Equal(agent, AgentOf(d, h)); // the same agent: the container lived through the restart
        }
        finally
        {
            await d.CliAsync("destroy", h);
        }
        await StopAndAwaitStopping();
    }

    /// <summary>The host pid of a container's agent: the process running /.garden/agent in its cgroup.</summary>
    private static int AgentOf(Gardend d, string handle)
    {
        foreach (var dir in Directory.GetDirectories("/proc").Where(p => int.TryParse(Path.GetFileName(p), out _)))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(dir, "cmdline")).StartsWith("/.garden/agent\0", StringComparison.Ordinal)) continue;
                if (File.ReadAllText(Path.Combine(dir, "cgroup")).Contains($"/{d.CgroupParent}/{handle}\n", StringComparison.Ordinal))
                    return int.Parse(Path.GetFileName(dir), CultureInfo.InvariantCulture);
            }
            catch (IOException) { } // gone meanwhile
        }
        throw new Xunit.Sdk.XunitException($"no agent of {handle} found");
    }
}

/// <summary>gardend's log as JSON lines (<c>--log-format json</c>).</summary>
public sealed class JsonLogTests
{
    [InstallFact]
    public async Task Every_line_is_a_json_object_and_a_containers_lines_carry_its_handle_and_operation()
    {
        await using var d = new Gardend { ExtraArgs = ["--log-format", "json"] };
        await d.StartAsync();
        var h = "jsonlog-" + Guid.NewGuid().ToString("N")[..8];
        Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode);
        Assert.Equal(0, (await d.CliAsync("destroy", h)).ExitCode);
        await d.StopAsync();

        var lines = d.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        var entries = new List<JsonElement>();
        foreach (var line in lines)
        {
            JsonElement e;
            try
            {
                e = JsonDocument.Parse(line).RootElement;
            }
            catch (JsonException)
            {
                throw new Xunit.Sdk.XunitException($"not a JSON line: {line}\nthe whole log:\n{d.Log}");
            }
            Assert.Equal(JsonValueKind.Object, e.ValueKind);
            Assert.True(DateTimeOffset.TryParse(e.GetProperty("timestamp").GetString(), CultureInfo.InvariantCulture, out _), line);
            Assert.Contains(e.GetProperty("level").GetString(), new[] { "trace", "debug", "info", "warning", "error", "critical" });
            Assert.False(string.IsNullOrEmpty(e.GetProperty("message").GetString()), line);
            entries.Add(e);
        }
        string? S(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? v.GetString() : null;
        var ours = entries.Where(e => S(e, "handle") == h).ToList();
        Assert.Contains(ours, e => S(e, "operation") == "create" && S(e, "message")!.StartsWith("create finished in ", StringComparison.Ordinal));
        Assert.Contains(ours, e => S(e, "operation") == "destroy");
        Assert.Contains(entries, e => S(e, "message")!.StartsWith("gardend stopping", StringComparison.Ordinal)); // a plain line, as JSON
    }

    [InstallFact]
    public async Task A_log_format_that_is_neither_text_nor_json_is_refused_naming_it()
    {
        await using var d = new Gardend { ExtraArgs = ["--log-format", "xml"] };
        Assert.Equal(2, await d.StartExpectingExitAsync());
        Assert.Contains("garden.log.format (--log-format): \"xml\" is neither text nor json", d.Log);
    }
}

/// <summary>The metrics listener's bad input: gardend refuses to start, naming the setting, and leaves nothing running.</summary>
public sealed class MetricsListenerTests
{
    [InstallFact]
    public async Task A_metrics_port_in_use_stops_the_start_naming_the_setting()
    {
        using var taken = new TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        await using var d = new Gardend($"garden.metrics.address = \"127.0.0.1:{port}\"");
        Assert.Equal(1, await d.StartExpectingExitAsync());
        Assert.Contains($"garden.metrics.address: cannot listen on 127.0.0.1:{port}", d.Log);
    }

    [InstallFact]
    public async Task A_metrics_address_off_loopback_is_refused_unless_allowed()
    {
        await using var d = new Gardend($"garden.metrics.address = \"0.0.0.0:{RemoteDaemonFixture.FreePort()}\"");
        Assert.Equal(2, await d.StartExpectingExitAsync());
        Assert.Contains("is not a loopback address", d.Log);
        Assert.Contains("garden.metrics.allow-non-loopback = on", d.Log);
    }
}

/// <summary>Under Garden's id mapping every unprivileged container's root is the host's uid 4294967294, and runc charges
/// each container's session keyring to it: at the kernel's default quota (200 keys) about the 199th container failed to
/// start ("unable to create session key: disk quota exceeded"), below garden.max-containers. gardend raises the quota.</summary>
[Collection("host quotas")] // each sets a kernel default and then starts a daemon that raises both: not beside the other
public sealed class KeyQuotaTests
{
    private const string Keys = "/proc/sys/kernel/keys";

    [InstallFact]
    public async Task A_start_raises_the_kernel_key_quota_to_a_keyring_per_container_and_says_so()
    {
        var (keys, bytes) = (File.ReadAllText($"{Keys}/maxkeys").Trim(), File.ReadAllText($"{Keys}/maxbytes").Trim());
        try
        {
            // the kernel's defaults, as on a host gardend never ran on (the containers of tests running meanwhile hold far fewer)
            File.WriteAllText($"{Keys}/maxkeys", "200");
            File.WriteAllText($"{Keys}/maxbytes", "20000");
            await using var d = new Gardend("garden.max-containers = 300");
            await d.StartAsync();
            Assert.Equal("500", File.ReadAllText($"{Keys}/maxkeys").Trim());
            Assert.Equal("160000", File.ReadAllText($"{Keys}/maxbytes").Trim()); // 320 bytes a keyring
            // (a test daemon starting meanwhile may have raised it by its own, smaller max-containers first)
            Assert.Matches(@"raised kernel.keys.maxkeys \d+ -> 500", d.Log);
        }
        finally
        {
            // what was there before, if it was more
            foreach (var (name, before) in new[] { ("maxkeys", keys), ("maxbytes", bytes) })
                if (long.Parse(before) > long.Parse(File.ReadAllText($"{Keys}/{name}").Trim())) File.WriteAllText($"{Keys}/{name}", before);
        }
    }
}

/// <summary>Under Garden's id mapping every unprivileged container's root is one host uid, and the kernel's limits on a
/// uid's pipe pages (fs.pipe-user-pages-soft) and epoll watches (fs.epoll.max_user_watches) are shared by all: any one
/// container could fill them for all (Escape/SharedQuotaEscapeTests). gardend lifts both at start.</summary>
[Collection("host quotas")]
public sealed class SharedUidLimitsTests
{
    private const string Pipes = "/proc/sys/fs/pipe-user-pages-soft";
    private const string Watches = "/proc/sys/fs/epoll/max_user_watches";

    [InstallFact]
    public async Task A_start_lifts_the_pipe_and_epoll_limits_of_the_shared_uid_and_says_so()
    {
        // the kernel's defaults, as on a host gardend never ran on
        File.WriteAllText(Pipes, "16384");
        File.WriteAllText(Watches, "5491511");
        await using var d = new Gardend();
        await d.StartAsync();
        Assert.Equal("0", File.ReadAllText(Pipes).Trim());
        Assert.Equal(long.MaxValue.ToString(), File.ReadAllText(Watches).Trim());
        // and says so (unless a test daemon starting meanwhile lifted them first)
        if (d.Log.Contains("lifted fs.pipe-user-pages-soft", StringComparison.Ordinal))
        {
            Assert.Contains("lifted fs.pipe-user-pages-soft 16384 -> 0 (none)", d.Log);
            Assert.Contains("lifted fs.epoll.max_user_watches 5491511 -> 9223372036854775807 (none)", d.Log);
        }
    }
}
