using System.Diagnostics;
using System.Runtime.CompilerServices;
using Garden.Actors;
using Garden.Protocol.Api;

namespace Garden.Host.ApiCore;

/// <summary>The API core, measured: each operation reports its kind (the rpc's name, lower case), how long it took and,
/// when it failed, its status code (<see cref="IGardenMetrics.Operation"/>). All three front doors call the core through
/// it (the composition root wraps <see cref="GardenApi"/>), so an operation counts once whichever way it came. Run and
/// Attach are timed until the process started (or was found), StreamIn until extracted, StreamOut until its last chunk;
/// Events, a stream without an end, is counted when it opens.</summary>
public sealed class MeteredGardenApi(IGardenApi core, IGardenMetrics metrics) : IGardenApi
{
    public Task<PingResponse> PingAsync(PingRequest r, CancellationToken ct = default) => M("ping", () => core.PingAsync(r, ct));
    public Task<CapacityResponse> CapacityAsync(CapacityRequest r, CancellationToken ct = default) => M("capacity", () => core.CapacityAsync(r, ct));
    public Task<CreateResponse> CreateAsync(CreateRequest r, CancellationToken ct = default) => M("create", () => core.CreateAsync(r, ct));
    public Task<DestroyResponse> DestroyAsync(DestroyRequest r, CancellationToken ct = default) => M("destroy", () => core.DestroyAsync(r, ct));
    public Task<ListResponse> ListAsync(ListRequest r, CancellationToken ct = default) => M("list", () => core.ListAsync(r, ct));
    public Task<ContainerInfo> InfoAsync(InfoRequest r, CancellationToken ct = default) => M("info", () => core.InfoAsync(r, ct));
    public Task<BulkInfoResponse> BulkInfoAsync(BulkInfoRequest r, CancellationToken ct = default) => M("bulk_info", () => core.BulkInfoAsync(r, ct));
    public Task<StopResponse> StopAsync(StopRequest r, CancellationToken ct = default) => M("stop", () => core.StopAsync(r, ct));
    public Task<SignalResponse> SignalAsync(SignalRequest r, CancellationToken ct = default) => M("signal", () => core.SignalAsync(r, ct));
    public Task<PropertiesResponse> PropertiesAsync(PropertiesRequest r, CancellationToken ct = default) => M("properties", () => core.PropertiesAsync(r, ct));
    public Task<GetPropertyResponse> GetPropertyAsync(GetPropertyRequest r, CancellationToken ct = default) => M("get_property", () => core.GetPropertyAsync(r, ct));
    public Task<SetPropertyResponse> SetPropertyAsync(SetPropertyRequest r, CancellationToken ct = default) => M("set_property", () => core.SetPropertyAsync(r, ct));
    public Task<RemovePropertyResponse> RemovePropertyAsync(RemovePropertyRequest r, CancellationToken ct = default) => M("remove_property", () => core.RemovePropertyAsync(r, ct));
    public Task<LimitsResponse> LimitAsync(LimitRequest r, CancellationToken ct = default) => M("limit", () => core.LimitAsync(r, ct));
    public Task<LimitsResponse> CurrentLimitsAsync(CurrentLimitsRequest r, CancellationToken ct = default) => M("current_limits", () => core.CurrentLimitsAsync(r, ct));
    public Task<ContainerMetrics> MetricsAsync(MetricsRequest r, CancellationToken ct = default) => M("metrics", () => core.MetricsAsync(r, ct));
    public Task<BulkMetricsResponse> BulkMetricsAsync(BulkMetricsRequest r, CancellationToken ct = default) => M("bulk_metrics", () => core.BulkMetricsAsync(r, ct));
    public Task<NetInResponse> NetInAsync(NetInRequest r, CancellationToken ct = default) => M("net_in", () => core.NetInAsync(r, ct));
    public Task<NetOutResponse> NetOutAsync(NetOutRequest r, CancellationToken ct = default) => M("net_out", () => core.NetOutAsync(r, ct));
    public Task<NetOutResponse> BulkNetOutAsync(BulkNetOutRequest r, CancellationToken ct = default) => M("bulk_net_out", () => core.BulkNetOutAsync(r, ct));
    public Task<SetTtyResponse> SetTtyAsync(SetTtyRequest r, CancellationToken ct = default) => M("set_tty", () => core.SetTtyAsync(r, ct));
    public Task<SetGraceTimeResponse> SetGraceTimeAsync(SetGraceTimeRequest r, CancellationToken ct = default) => M("set_grace_time", () => core.SetGraceTimeAsync(r, ct));
    public Task<IApiProcess> RunAsync(RunRequest r, CancellationToken ct = default) => M("run", () => core.RunAsync(r, ct));
    public Task<IApiProcess> AttachAsync(AttachRequest r, CancellationToken ct = default) => M("attach", () => core.AttachAsync(r, ct));

    public Task<StreamInResponse> StreamInAsync(StreamInRequest r, IAsyncEnumerable<ReadOnlyMemory<byte>> archive, CancellationToken ct = default) =>
        M("stream_in", () => core.StreamInAsync(r, archive, ct));

    public IAsyncEnumerable<ContainerEvent> Events(EventsRequest r, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            var events = core.Events(r, ct);
            metrics.Operation("events", clock.Elapsed, null);
            return events;
        }
        catch (Exception e)
        {
            metrics.Operation("events", clock.Elapsed, Code(e));
            throw;
        }
    }

    public IAsyncEnumerable<StreamOutChunk> StreamOut(StreamOutRequest r, CancellationToken ct = default) => Measured("stream_out", core.StreamOut(r, ct));

    private async Task<T> M<T>(string kind, Func<Task<T>> call)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            var answer = await call();
            metrics.Operation(kind, clock.Elapsed, null);
            return answer;
        }
        catch (Exception e)
        {
            metrics.Operation(kind, clock.Elapsed, Code(e));
            throw;
        }
    }

    private async IAsyncEnumerable<T> Measured<T>(string kind, IAsyncEnumerable<T> items, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        await using var e = items.GetAsyncEnumerator(ct);
        while (true)
        {
            T item;
            try
            {
                if (!await e.MoveNextAsync())
                {
                    metrics.Operation(kind, clock.Elapsed, null);
                    yield break;
                }
                item = e.Current;
            }
            catch (Exception ex)
            {
                metrics.Operation(kind, clock.Elapsed, Code(ex));
                throw;
            }
            yield return item;
        }
    }

    /// <summary>The status code name the front doors answer this failure with.</summary>
    private static string Code(Exception e) =>
        e is OperationCanceledException ? "Cancelled" : Gateway.Errors.ToStatus(e).StatusCode.ToString();
}
