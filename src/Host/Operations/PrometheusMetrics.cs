using Garden.Actors;
using Prometheus;

namespace Garden.Host.Operations;

/// <summary>gardend's metrics in a Prometheus registry of its own (prometheus-net), served by <see cref="MetricsEndpoint"/>
/// when <c>garden.metrics.address</c> is set. Two kinds of family:
/// <list type="bullet">
/// <item>told where they happen (<see cref="IGardenMetrics"/>): containers by state, operations with their latency and
/// errors, journal writes, recoveries, OOM kills, agent round trips;</item>
/// <item>read at each scrape (<see cref="ContainerGauges"/>, <see cref="JournalSize"/>): every container's memory, CPU, pids,
/// disk and network bytes, through the API core's BulkMetrics (what <c>garden metrics</c> shows), and the journal's size
/// on disk.</item>
/// </list>
/// Names follow Prometheus' conventions: <c>garden_</c> prefix, base units (seconds, bytes), <c>_total</c> on counters.</summary>
public sealed class PrometheusMetrics : IGardenMetrics
{
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private readonly Gauge _containers;
    private readonly Histogram _operations;
    private readonly Counter _operationErrors;
    private readonly Counter _journalWrites;
    private readonly Counter _recoveries;
    private readonly Gauge _recoveredContainers;
    private readonly Gauge _recoverySeconds;
    private readonly Counter _oomKills;
    private readonly Histogram _agentCalls;
    private readonly Counter _agentErrors;
    private readonly Gauge _pool;
    private readonly Counter _poolCreates;

    public PrometheusMetrics()
    {
        var f = Metrics.WithCustomRegistry(Registry);
        _containers = f.CreateGauge("garden_containers", "Containers the daemon knows, by lifecycle state.", "state");
        foreach (var state in Enum.GetValues<ContainerLifecycle>()) _containers.WithLabels(StateName(state)).Set(0);
        _operations = f.CreateHistogram("garden_operation_duration_seconds",
            "API operations (gRPC, Akka.Remote, Garden HTTP), by kind: how long each took, failed or not. A Run or Attach is " +
            "timed until its process is started or found, a StreamIn/StreamOut until the archive is through.",
            ["operation"], new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 18) }); // 0.5 ms .. 65 s
        _operationErrors = f.CreateCounter("garden_operation_errors_total",
            "API operations that failed, by kind and status code (NotFound, InvalidArgument, ...).", "operation", "code");
        _journalWrites = f.CreateCounter("garden_journal_writes_total",
            "Events written to the journal, by writer (host: registrations, pools, recoveries; container: its own events).", "writer");
        foreach (var writer in new[] { "host", "container" }) _journalWrites.WithLabels(writer);
        _recoveries = f.CreateCounter("garden_recoveries_total", "Recoveries from the journal finished (one per start of gardend).");
        _recoveredContainers = f.CreateGauge("garden_recovered_containers",
            "What the last recovery found, by outcome: reattached, broken, released (a create or destroy it finished or undid), " +
            "unfinished (still reconciling when the startup budget ran out).", "outcome");
        _recoverySeconds = f.CreateGauge("garden_recovery_duration_seconds", "How long the last recovery took.");
        _oomKills = f.CreateCounter("garden_oom_kills_total",
            "OOM kills the kernel reported in containers since gardend started (each notification; per container: " +
            "garden_container_oom_kills_total).");
        _agentCalls = f.CreateHistogram("garden_agent_round_trip_seconds",
            "Calls to the in-container agents, by call: from sending the request to its answer (a stream: to its first event).",
            ["call"], new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) }); // 0.1 ms .. 3.3 s
        _agentErrors = f.CreateCounter("garden_agent_call_errors_total", "Calls to agents that failed or timed out, by call.", "call");
        _pool = f.CreateGauge("garden_warm_pool",
            "The warm pool (garden.warm-pool): its configured size, the entries it holds (made, being made, or being checked " +
            "after a restart) and those ready for a Create to take.", "kind");
        foreach (var kind in new[] { "size", "entries", "ready" }) _pool.WithLabels(kind).Set(0);
        _poolCreates = f.CreateCounter("garden_warm_pool_creates_total",
            "Creates admitted while the warm pool is on, by outcome: pooled (took an entry), empty (of the pool's shape, but " +
            "no entry was ready: made the normal way), ineligible (not of the pool's shape).", "outcome");
        foreach (var outcome in new[] { "pooled", "empty", "ineligible" }) _poolCreates.WithLabels(outcome);
    }

    public static string StateName(ContainerLifecycle state) => state.ToString().ToLowerInvariant();

    public void Journaled(string writer, int events) => _journalWrites.WithLabels(writer).Inc(events);

    public void ContainersByState(IReadOnlyDictionary<ContainerLifecycle, int> counts)
    {
        foreach (var (state, n) in counts) _containers.WithLabels(StateName(state)).Set(n);
    }

    public void Recovered(int reattached, int broken, int released, int unfinished, TimeSpan took)
    {
        _recoveries.Inc();
        _recoveredContainers.WithLabels("reattached").Set(reattached);
        _recoveredContainers.WithLabels("broken").Set(broken);
        _recoveredContainers.WithLabels("released").Set(released);
        _recoveredContainers.WithLabels("unfinished").Set(unfinished);
        _recoverySeconds.Set(took.TotalSeconds);
    }

    public void OomKilled(string handle) => _oomKills.Inc();

    public void Operation(string kind, TimeSpan took, string? errorCode)
    {
        _operations.WithLabels(kind).Observe(took.TotalSeconds);
        if (errorCode is not null) _operationErrors.WithLabels(kind, errorCode).Inc();
    }

    public void WarmPool(int size, int entries, int ready)
    {
        _pool.WithLabels("size").Set(size);
        _pool.WithLabels("entries").Set(entries);
        _pool.WithLabels("ready").Set(ready);
    }

    public void PoolCreate(string outcome) => _poolCreates.WithLabels(outcome).Inc();

    public void AgentCall(string call, TimeSpan took, bool failed)
    {
        _agentCalls.WithLabels(call).Observe(took.TotalSeconds);
        if (failed) _agentErrors.WithLabels(call).Inc();
    }
}
