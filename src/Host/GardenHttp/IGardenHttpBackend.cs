using Api = Garden.Protocol.Api;

namespace Garden.Host.GardenHttp;

/// <summary>What the Garden HTTP layer needs from gardend: one method per Garden route, in garden.proto's messages (so
/// the binding to the transport-neutral API core is a forwarding), errors as <see cref="Garden.Actors.GardenException"/>
/// (mapped once, by <see cref="GardenErrors.From"/>). JSON ↔ protobuf is done by this layer (<see cref="GardenConvert"/>).
/// Garden has no Limit, Events or signal-by-number route; Signal and SetTty are what a Run/Attach connection's
/// payloads become.</summary>
public interface IGardenHttpBackend
{
    Task<Api.PingResponse> PingAsync(Api.PingRequest request, CancellationToken ct);
    Task<Api.CapacityResponse> CapacityAsync(Api.CapacityRequest request, CancellationToken ct);
    Task<Api.CreateResponse> CreateAsync(Api.CreateRequest request, CancellationToken ct);
    Task<Api.DestroyResponse> DestroyAsync(Api.DestroyRequest request, CancellationToken ct);
    Task<Api.ListResponse> ListAsync(Api.ListRequest request, CancellationToken ct);
    Task<Api.ContainerInfo> InfoAsync(Api.InfoRequest request, CancellationToken ct);
    /// <summary>An entry for every handle asked, failed ones with their error: the call itself does not fail for one.</summary>
    Task<Api.BulkInfoResponse> BulkInfoAsync(Api.BulkInfoRequest request, CancellationToken ct);
    Task<Api.StopResponse> StopAsync(Api.StopRequest request, CancellationToken ct);
    Task<Api.ContainerMetrics> MetricsAsync(Api.MetricsRequest request, CancellationToken ct);
    Task<Api.BulkMetricsResponse> BulkMetricsAsync(Api.BulkMetricsRequest request, CancellationToken ct);
    /// <summary>The limits as the container was given them (Garden's current-limits routes echo the request, they do
    /// not read the kernel).</summary>
    Task<Api.LimitsResponse> CurrentLimitsAsync(Api.CurrentLimitsRequest request, CancellationToken ct);
    Task<Api.NetInResponse> NetInAsync(Api.NetInRequest request, CancellationToken ct);
    Task<Api.NetOutResponse> NetOutAsync(Api.NetOutRequest request, CancellationToken ct);
    Task<Api.NetOutResponse> BulkNetOutAsync(Api.BulkNetOutRequest request, CancellationToken ct);
    Task<Api.PropertiesResponse> PropertiesAsync(Api.PropertiesRequest request, CancellationToken ct);
    Task<Api.GetPropertyResponse> GetPropertyAsync(Api.GetPropertyRequest request, CancellationToken ct);
    Task<Api.SetPropertyResponse> SetPropertyAsync(Api.SetPropertyRequest request, CancellationToken ct);
    Task<Api.RemovePropertyResponse> RemovePropertyAsync(Api.RemovePropertyRequest request, CancellationToken ct);
    Task<Api.SetGraceTimeResponse> SetGraceTimeAsync(Api.SetGraceTimeRequest request, CancellationToken ct);

    /// <summary>Extracts <paramref name="archive"/> (the request body, read as it arrives) into the container; answers
    /// when it is extracted. <paramref name="request"/> carries handle, path and user, no data.</summary>
    Task<Api.StreamInResponse> StreamInAsync(Api.StreamInRequest request, Stream archive, CancellationToken ct);

    /// <summary>The tar of a path. Fails from the Task (answered as an error) when nothing can be sent; a failure once
    /// bytes flow is an exception from the stream's reads (the client then sees the body end early, never a short
    /// but valid tar). The layer disposes the stream.</summary>
    Task<Stream> StreamOutAsync(Api.StreamOutRequest request, CancellationToken ct);

    /// <summary>Starts a process and answers once it has started (every failure to start is an error of this call,
    /// which the client sees as Run's error). <c>request.Detach</c> is false and <c>request.Stdin</c> unset.</summary>
    Task<IGardenProcess> RunAsync(Api.RunRequest request, CancellationToken ct);

    /// <summary>Attaches to a running or exited process (exited: its events end with the exit at once).</summary>
    Task<IGardenProcess> AttachAsync(Api.AttachRequest request, CancellationToken ct);

    /// <summary>Garden's TERM (15) and KILL (9), from a Run/Attach connection.</summary>
    Task<Api.SignalResponse> SignalAsync(Api.SignalRequest request, CancellationToken ct);

    Task<Api.SetTtyResponse> SetTtyAsync(Api.SetTtyRequest request, CancellationToken ct);

    /// <summary>Garden's grace time counts only while no request touches the container: the layer calls this as a
    /// request naming a container begins and disposes the result when it ends; a Run or Attach holds it for as long as
    /// its connection is open. Holds may overlap (several requests, several attached clients) and may name a handle
    /// that does not exist.</summary>
    IDisposable PauseGraceTime(string handle);
}

/// <summary>One client's view of a process (Run or Attach): its events, and its stdin. Disposing it detaches this
/// client; the process keeps running.</summary>
public interface IGardenProcess : IAsyncDisposable
{
    string ProcessId { get; }

    /// <summary>Output (stdout, stderr, in the order produced), OutputMissed, and last Exited (exit_code: 128+N when
    /// killed by signal N). Ends without Exited only when the stream broke (the layer tells the client so) or is
    /// cancelled.</summary>
    IAsyncEnumerable<Api.ProcessEvent> Events { get; }

    Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct);

    Task CloseStdinAsync(CancellationToken ct);
}
