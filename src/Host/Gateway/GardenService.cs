using Garden.Actors;
using Garden.Host.ApiCore;
using Garden.Protocol.Api;
using Grpc.Core;

namespace Garden.Host.Gateway;

/// <summary>garden.v1.Garden over gRPC: a thin adapter over the API core (<see cref="IGardenApi"/>). It only moves
/// messages between gRPC's streams and the core's; errors leave as the core threw them and the interceptor
/// (<see cref="UnexpectedErrors"/>) maps them to a status in one place (<see cref="Errors"/>).</summary>
public sealed class GardenService(IGardenApi api) : Protocol.Api.Garden.GardenBase
{
    public override Task<PingResponse> Ping(PingRequest request, ServerCallContext context) => api.PingAsync(request, context.CancellationToken);
    public override Task<CapacityResponse> Capacity(CapacityRequest request, ServerCallContext context) => api.CapacityAsync(request, context.CancellationToken);
    public override Task<CreateResponse> Create(CreateRequest request, ServerCallContext context) => api.CreateAsync(request, context.CancellationToken);
    public override Task<DestroyResponse> Destroy(DestroyRequest request, ServerCallContext context) => api.DestroyAsync(request, context.CancellationToken);
    public override Task<ListResponse> List(ListRequest request, ServerCallContext context) => api.ListAsync(request, context.CancellationToken);
    public override Task<ContainerInfo> Info(InfoRequest request, ServerCallContext context) => api.InfoAsync(request, context.CancellationToken);
    public override Task<BulkInfoResponse> BulkInfo(BulkInfoRequest request, ServerCallContext context) => api.BulkInfoAsync(request, context.CancellationToken);
    public override Task<StopResponse> Stop(StopRequest request, ServerCallContext context) => api.StopAsync(request, context.CancellationToken);
    public override Task<SignalResponse> Signal(SignalRequest request, ServerCallContext context) => api.SignalAsync(request, context.CancellationToken);
    public override Task<PropertiesResponse> Properties(PropertiesRequest request, ServerCallContext context) => api.PropertiesAsync(request, context.CancellationToken);
    public override Task<GetPropertyResponse> GetProperty(GetPropertyRequest request, ServerCallContext context) => api.GetPropertyAsync(request, context.CancellationToken);
    public override Task<SetPropertyResponse> SetProperty(SetPropertyRequest request, ServerCallContext context) => api.SetPropertyAsync(request, context.CancellationToken);
    public override Task<RemovePropertyResponse> RemoveProperty(RemovePropertyRequest request, ServerCallContext context) => api.RemovePropertyAsync(request, context.CancellationToken);
    public override Task<LimitsResponse> Limit(LimitRequest request, ServerCallContext context) => api.LimitAsync(request, context.CancellationToken);
    public override Task<LimitsResponse> CurrentLimits(CurrentLimitsRequest request, ServerCallContext context) => api.CurrentLimitsAsync(request, context.CancellationToken);
    public override Task<ContainerMetrics> Metrics(MetricsRequest request, ServerCallContext context) => api.MetricsAsync(request, context.CancellationToken);
    public override Task<BulkMetricsResponse> BulkMetrics(BulkMetricsRequest request, ServerCallContext context) => api.BulkMetricsAsync(request, context.CancellationToken);
    public override Task<NetInResponse> NetIn(NetInRequest request, ServerCallContext context) => api.NetInAsync(request, context.CancellationToken);
    public override Task<NetOutResponse> NetOut(NetOutRequest request, ServerCallContext context) => api.NetOutAsync(request, context.CancellationToken);
    public override Task<NetOutResponse> BulkNetOut(BulkNetOutRequest request, ServerCallContext context) => api.BulkNetOutAsync(request, context.CancellationToken);
    public override Task<SetTtyResponse> SetTty(SetTtyRequest request, ServerCallContext context) => api.SetTtyAsync(request, context.CancellationToken);
    public override Task<SetGraceTimeResponse> SetGraceTime(SetGraceTimeRequest request, ServerCallContext context) => api.SetGraceTimeAsync(request, context.CancellationToken);

    /// <summary>The response headers go out once the core has subscribed: a client that saw them misses nothing
    /// published after.</summary>
    public override async Task Events(EventsRequest request, IServerStreamWriter<ContainerEvent> responseStream, ServerCallContext context)
    {
        var events = api.Events(request, context.CancellationToken);
        await using var e = events.GetAsyncEnumerator(context.CancellationToken);
        await context.WriteResponseHeadersAsync(new Metadata());
        while (await e.MoveNextAsync()) await responseStream.WriteAsync(e.Current);
    }

    /// <summary>A streaming call whose first message is missing.</summary>
    public static GardenException NoFirstMessage(string call, string what) =>
        new(ErrorKind.InvalidArgument, $"{call}: the first message must {what}");

    public override async Task Run(IAsyncStreamReader<RunRequest> requestStream, IServerStreamWriter<ProcessEvent> responseStream,
        ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct)) throw NoFirstMessage("run", "carry handle and spec");
        await using var process = await api.RunAsync(requestStream.Current, ct);
        await responseStream.WriteAsync(new ProcessEvent { Started = new ProcessStarted { ProcessId = process.ProcessId } });
        await GardenApi.PumpAsync(process, Stdin(requestStream, r => r.Stdin), responseStream.WriteAsync, ct);
    }

    public override async Task Attach(IAsyncStreamReader<AttachRequest> requestStream, IServerStreamWriter<ProcessEvent> responseStream,
        ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct)) throw NoFirstMessage("attach", "name handle and process");
        await using var process = await api.AttachAsync(requestStream.Current, ct);
        await responseStream.WriteAsync(new ProcessEvent { Started = new ProcessStarted { ProcessId = process.ProcessId } });
        await GardenApi.PumpAsync(process, Stdin(requestStream, r => r.Stdin), responseStream.WriteAsync, ct);
    }

    public override async Task<StreamInResponse> StreamIn(IAsyncStreamReader<StreamInRequest> requestStream, ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken)) throw NoFirstMessage("stream-in", "carry handle and path");
        return await api.StreamInAsync(requestStream.Current, Data(requestStream), context.CancellationToken);
    }

    public override async Task StreamOut(StreamOutRequest request, IServerStreamWriter<StreamOutChunk> responseStream, ServerCallContext context)
    {
        await foreach (var chunk in api.StreamOut(request, context.CancellationToken)) await responseStream.WriteAsync(chunk);
    }

    private static async IAsyncEnumerable<StdinChunk?> Stdin<T>(IAsyncStreamReader<T> requests, Func<T, StdinChunk?> stdinOf,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        while (await requests.MoveNext(ct)) yield return stdinOf(requests.Current);
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Data(IAsyncStreamReader<StreamInRequest> requests,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        while (await requests.MoveNext(ct)) yield return requests.Current.Data.Memory;
    }
}
