using Garden.Protocol.Api;

namespace Garden.Host.ApiCore;

/// <summary>gardend's API, transport-neutral: one method per rpc of garden.proto, garden.v1 messages in and out, server
/// streams as <see cref="IAsyncEnumerable{T}"/>, client streams (stdin, an archive) as an <see cref="IAsyncEnumerable{T}"/>
/// of bytes, and every failure a <see cref="Garden.Actors.GardenException"/> (or, for what no domain rule explains, any
/// other exception). gRPC (Gateway.GardenService), Akka.Remote (Remote.ApiActor) and Garden's HTTP API
/// (GardenHttp.ApiHttpBackend) are thin adapters over it: each maps errors to its own wire once, and does nothing else.
/// Implemented by <see cref="GardenApi"/>.</summary>
public interface IGardenApi
{
    Task<PingResponse> PingAsync(PingRequest request, CancellationToken ct = default);
    Task<CapacityResponse> CapacityAsync(CapacityRequest request, CancellationToken ct = default);
    Task<CreateResponse> CreateAsync(CreateRequest request, CancellationToken ct = default);
    Task<DestroyResponse> DestroyAsync(DestroyRequest request, CancellationToken ct = default);
    Task<ListResponse> ListAsync(ListRequest request, CancellationToken ct = default);
    Task<ContainerInfo> InfoAsync(InfoRequest request, CancellationToken ct = default);
    /// <summary>An entry per distinct handle; a handle that failed carries its error (status code name and message).</summary>
    Task<BulkInfoResponse> BulkInfoAsync(BulkInfoRequest request, CancellationToken ct = default);
    Task<StopResponse> StopAsync(StopRequest request, CancellationToken ct = default);
    Task<SignalResponse> SignalAsync(SignalRequest request, CancellationToken ct = default);
    Task<PropertiesResponse> PropertiesAsync(PropertiesRequest request, CancellationToken ct = default);
    Task<GetPropertyResponse> GetPropertyAsync(GetPropertyRequest request, CancellationToken ct = default);
    Task<SetPropertyResponse> SetPropertyAsync(SetPropertyRequest request, CancellationToken ct = default);
    Task<RemovePropertyResponse> RemovePropertyAsync(RemovePropertyRequest request, CancellationToken ct = default);
    Task<LimitsResponse> LimitAsync(LimitRequest request, CancellationToken ct = default);
    Task<LimitsResponse> CurrentLimitsAsync(CurrentLimitsRequest request, CancellationToken ct = default);
    Task<ContainerMetrics> MetricsAsync(MetricsRequest request, CancellationToken ct = default);
    Task<BulkMetricsResponse> BulkMetricsAsync(BulkMetricsRequest request, CancellationToken ct = default);
    Task<NetInResponse> NetInAsync(NetInRequest request, CancellationToken ct = default);
    Task<NetOutResponse> NetOutAsync(NetOutRequest request, CancellationToken ct = default);
    Task<NetOutResponse> BulkNetOutAsync(BulkNetOutRequest request, CancellationToken ct = default);
    Task<SetTtyResponse> SetTtyAsync(SetTtyRequest request, CancellationToken ct = default);
    Task<SetGraceTimeResponse> SetGraceTimeAsync(SetGraceTimeRequest request, CancellationToken ct = default);

    /// <summary>Subscribes before it returns (every event published from then on is in the sequence), then yields events
    /// until <paramref name="ct"/> is cancelled or gardend stops; the sequence then ends without error. Enumerate it (or
    /// cancel <paramref name="ct"/>): the subscription ends with the enumeration.</summary>
    IAsyncEnumerable<ContainerEvent> Events(EventsRequest request, CancellationToken ct = default);

    /// <summary>Starts a process (handle, spec, detach; <c>request.Stdin</c> is ignored) and answers once it started:
    /// every failure to start is this call's. Dispose the result: until then the container counts a client attached.</summary>
    Task<IApiProcess> RunAsync(RunRequest request, CancellationToken ct = default);

    /// <summary>Attaches to a running or exited process (handle, process id, from offset).</summary>
    Task<IApiProcess> AttachAsync(AttachRequest request, CancellationToken ct = default);

    /// <summary>Extracts <paramref name="archive"/> (a tar, as it arrives) at <c>request.Path</c> as <c>request.User</c>;
    /// <c>request.Data</c>, when not empty, comes first. Answers when it is extracted; a bad archive fails at once.</summary>
    Task<StreamInResponse> StreamInAsync(StreamInRequest request, IAsyncEnumerable<ReadOnlyMemory<byte>> archive, CancellationToken ct = default);

    /// <summary>The tar of <c>request.Path</c> in pieces. The tool starts at the first MoveNextAsync; a failure (unknown
    /// container, missing path) is an exception from a MoveNextAsync, never a short but valid tar.</summary>
    IAsyncEnumerable<StreamOutChunk> StreamOut(StreamOutRequest request, CancellationToken ct = default);
}

/// <summary>One client's view of a process from Run or Attach. Disposing it detaches this client; the process keeps
/// running.</summary>
public interface IApiProcess : IAsyncDisposable
{
    string ProcessId { get; }

    /// <summary>Output, OutputMissed and, last, Exited (never Started: the process id is <see cref="ProcessId"/>).
    /// Empty for a detached Run. A stream that breaks before the exit throws a GardenException (Unavailable).</summary>
    IAsyncEnumerable<ProcessEvent> Events(CancellationToken ct = default);

    Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default);

    Task CloseStdinAsync(CancellationToken ct = default);
}
