using System.Net;
using Akka.Configuration;
using Garden.Host.ApiCore;
using Garden.Protocol.Api;
using Prometheus;

namespace Garden.Host.Operations;

/// <summary>The metrics listener (<c>garden.metrics.address</c>): HOST:PORT, off when empty (the default), loopback only
/// unless <c>garden.metrics.allow-non-loopback = on</c> — the rule of the debug endpoint (<see cref="LoopbackTcp"/>).</summary>
public sealed record MetricsDoor(IPEndPoint EndPoint)
{
    public const string Setting = "garden.metrics.address";
    public const string AllowSetting = "garden.metrics.allow-non-loopback";

    public static MetricsDoor? FromConfig(Config config) =>
        LoopbackTcp.FromConfig(config, Setting, AllowSetting, "the metrics endpoint",
            "the metrics have no authentication (they name every container and what it uses)") is { } ip ? new MetricsDoor(ip) : null;
}

/// <summary>Serves <c>GET /metrics</c> (Prometheus' text format) from <see cref="PrometheusMetrics.Registry"/> on a Kestrel of
/// its own (prometheus-net's <see cref="KestrelMetricServer"/>): nothing of the gRPC gateway is reachable on this port.
/// Before each scrape, the per-container families and the journal's size are read (<see cref="ContainerGauges"/>).</summary>
public sealed class MetricsEndpoint(MetricsDoor door, PrometheusMetrics metrics, IServiceProvider services, GardendSettings settings,
    ILogger<MetricsEndpoint> log) : IHostedService
{
    private KestrelMetricServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // the API core is made once the actor system runs (this service starts after it)
        var gauges = new ContainerGauges(metrics.Registry, services.GetRequiredService<GardenApi>(), settings.Garden.JournalPath, log);
        metrics.Registry.AddBeforeCollectCallback(gauges.ReadAsync);
        _server = new KestrelMetricServer(new KestrelMetricServerOptions
        {
            Hostname = door.EndPoint.Address.ToString(),
            Port = (ushort)door.EndPoint.Port,
            Url = "/metrics",
            Registry = metrics.Registry,
        });
        try
        {
            _server.Start();
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            throw new StartupFailure(1, $"{MetricsDoor.Setting}: cannot listen on {door.EndPoint}: {e.Message}");
        }
        Console.WriteLine($"gardend: metrics at http://{door.EndPoint}/metrics");
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null) await _server.StopAsync();
    }
}

/// <summary>The families read at each scrape: every container's memory, CPU, pids, disk and network bytes and OOM kills
/// (the API core's List and BulkMetrics, what <c>garden metrics</c> shows, not counted as operations), and the journal's
/// size on disk (journal.db with its -wal and -shm). A container gone since the last scrape loses its series.</summary>
public sealed class ContainerGauges
{
    private readonly GardenApi _core;
    private readonly string _journal;
    private readonly ILogger _log;
    private readonly Gauge _memory, _memoryLimit, _pids, _pidsMax, _disk, _diskLimit, _journalBytes;
    private readonly Counter _cpu, _rx, _tx, _oom;
    private readonly SemaphoreSlim _one = new(1, 1); // scrapes at once read one after the other
    private HashSet<string> _known = [];

    public ContainerGauges(CollectorRegistry registry, GardenApi core, string journalPath, ILogger log)
    {
        _core = core;
        _journal = journalPath;
        _log = log;
        var f = Metrics.WithCustomRegistry(registry);
        Gauge G(string name, string help) => f.CreateGauge(name, help, "handle");
        Counter C(string name, string help) => f.CreateCounter(name, help, "handle");
        _memory = G("garden_container_memory_bytes", "Memory in use by the container's processes (their cgroup, tmpfs included; not the agent).");
        _memoryLimit = G("garden_container_memory_limit_bytes", "The memory limit the kernel holds (0 = none).");
        _cpu = C("garden_container_cpu_seconds_total", "CPU time the container has used (cpuacct), in seconds.");
        _pids = G("garden_container_pids", "Processes in the container (its agent included).");
        _pidsMax = G("garden_container_pids_max", "The pids limit (0 = none).");
        _disk = G("garden_container_disk_bytes", "Bytes the container wrote to its own disk (its disk-limited layer).");
        _diskLimit = G("garden_container_disk_limit_bytes", "The size of the container's disk (0 = no disk limit).");
        _rx = C("garden_container_network_receive_bytes_total", "Bytes the container received (read from its veth).");
        _tx = C("garden_container_network_transmit_bytes_total", "Bytes the container sent (read from its veth).");
        _oom = C("garden_container_oom_kills_total", "OOM kills in the container since it was created (journaled: survives restarts).");
        _journalBytes = f.CreateGauge("garden_journal_size_bytes", "Size of the journal on disk (journal.db, -wal and -shm).");
    }

    private IEnumerable<Collector<Gauge.Child>> Gauges => [_memory, _memoryLimit, _pids, _pidsMax, _disk, _diskLimit];

    private IEnumerable<Collector<Counter.Child>> Counters => [_cpu, _rx, _tx, _oom];

    /// <summary>A counter the kernel (or the journal) keeps: set to what it reads. A value below the last one is a new
    /// container under the same handle since the last scrape: the series starts again (a counter reset).</summary>
    private static void Count(Counter counter, string handle, double value)
    {
        if (value < counter.WithLabels(handle).Value) counter.RemoveLabelled(handle);
        counter.WithLabels(handle).IncTo(value);
    }

    public async Task ReadAsync(CancellationToken ct)
    {
        await _one.WaitAsync(ct);
        try
        {
            await ReadOnceAsync(ct);
        }
        finally
        {
            _one.Release();
        }
    }

    private async Task ReadOnceAsync(CancellationToken ct)
    {
        _journalBytes.Set(new[] { "", "-wal", "-shm" }.Sum(s => new FileInfo(_journal + s) is { Exists: true } f ? f.Length : 0));
        Dictionary<string, BulkMetricsEntry> entries;
        try
        {
            var list = await _core.ListAsync(new ListRequest(), ct);
            var request = new BulkMetricsRequest();
            request.Handles.AddRange(list.Handles);
            entries = new Dictionary<string, BulkMetricsEntry>((await _core.BulkMetricsAsync(request, ct)).Metrics);
        }
        catch (Exception e) // recovering (Unavailable), or stopping: this scrape has no per-container families
        {
            _log.LogDebug("metrics: containers not read: {Error}", e.Message);
            entries = [];
        }
        var seen = new HashSet<string>();
        foreach (var (handle, entry) in entries)
        {
            if (entry.Metrics is not { } m) continue;
            seen.Add(handle);
            _memory.WithLabels(handle).Set(m.MemoryUsageBytes);
            _memoryLimit.WithLabels(handle).Set(m.MemoryLimitBytes);
            Count(_cpu, handle, m.CpuUsageNs / 1e9);
            _pids.WithLabels(handle).Set(m.PidsCurrent);
            _pidsMax.WithLabels(handle).Set(m.PidsMax);
            _disk.WithLabels(handle).Set(m.DiskUsedBytes);
            _diskLimit.WithLabels(handle).Set(m.DiskLimitBytes);
            Count(_rx, handle, m.RxBytes);
            Count(_tx, handle, m.TxBytes);
            Count(_oom, handle, m.OomKills);
        }
        foreach (var gone in _known.Except(seen))
        {
            foreach (var g in Gauges) g.RemoveLabelled(gone);
            foreach (var c in Counters) c.RemoveLabelled(gone);
        }
        _known = seen;
    }
}
