using Garden.Host.ApiCore;
using Garden.Linux.IO;
using Api = Garden.Protocol.Api;

namespace Garden.Host.GardenHttp;

/// <summary>The Garden HTTP layer's backend in gardend: a forwarding to the API core (<see cref="IGardenApi"/>), the
/// same one gRPC and Akka.Remote adapt. The layer maps the core's GardenExceptions to Garden's JSON errors itself.</summary>
public sealed class ApiHttpBackend(IGardenApi api) : IGardenHttpBackend
{
    public Task<Api.PingResponse> PingAsync(Api.PingRequest request, CancellationToken ct) => api.PingAsync(request, ct);
    public Task<Api.CapacityResponse> CapacityAsync(Api.CapacityRequest request, CancellationToken ct) => api.CapacityAsync(request, ct);
    public Task<Api.CreateResponse> CreateAsync(Api.CreateRequest request, CancellationToken ct) => api.CreateAsync(request, ct);
    public Task<Api.DestroyResponse> DestroyAsync(Api.DestroyRequest request, CancellationToken ct) => api.DestroyAsync(request, ct);
    public Task<Api.ListResponse> ListAsync(Api.ListRequest request, CancellationToken ct) => api.ListAsync(request, ct);
    public Task<Api.ContainerInfo> InfoAsync(Api.InfoRequest request, CancellationToken ct) => api.InfoAsync(request, ct);
    public Task<Api.BulkInfoResponse> BulkInfoAsync(Api.BulkInfoRequest request, CancellationToken ct) => api.BulkInfoAsync(request, ct);
    public Task<Api.StopResponse> StopAsync(Api.StopRequest request, CancellationToken ct) => api.StopAsync(request, ct);
    public Task<Api.ContainerMetrics> MetricsAsync(Api.MetricsRequest request, CancellationToken ct) => api.MetricsAsync(request, ct);
    public Task<Api.BulkMetricsResponse> BulkMetricsAsync(Api.BulkMetricsRequest request, CancellationToken ct) => api.BulkMetricsAsync(request, ct);
    public Task<Api.LimitsResponse> CurrentLimitsAsync(Api.CurrentLimitsRequest request, CancellationToken ct) => api.CurrentLimitsAsync(request, ct);
    public Task<Api.NetInResponse> NetInAsync(Api.NetInRequest request, CancellationToken ct) => api.NetInAsync(request, ct);
    public Task<Api.NetOutResponse> NetOutAsync(Api.NetOutRequest request, CancellationToken ct) => api.NetOutAsync(request, ct);
    public Task<Api.NetOutResponse> BulkNetOutAsync(Api.BulkNetOutRequest request, CancellationToken ct) => api.BulkNetOutAsync(request, ct);
    public Task<Api.PropertiesResponse> PropertiesAsync(Api.PropertiesRequest request, CancellationToken ct) => api.PropertiesAsync(request, ct);
    public Task<Api.GetPropertyResponse> GetPropertyAsync(Api.GetPropertyRequest request, CancellationToken ct) => api.GetPropertyAsync(request, ct);
    public Task<Api.SetPropertyResponse> SetPropertyAsync(Api.SetPropertyRequest request, CancellationToken ct) => api.SetPropertyAsync(request, ct);
    public Task<Api.RemovePropertyResponse> RemovePropertyAsync(Api.RemovePropertyRequest request, CancellationToken ct) => api.RemovePropertyAsync(request, ct);
    public Task<Api.SetGraceTimeResponse> SetGraceTimeAsync(Api.SetGraceTimeRequest request, CancellationToken ct) => api.SetGraceTimeAsync(request, ct);
    public Task<Api.SignalResponse> SignalAsync(Api.SignalRequest request, CancellationToken ct) => api.SignalAsync(request, ct);
    public Task<Api.SetTtyResponse> SetTtyAsync(Api.SetTtyRequest request, CancellationToken ct) => api.SetTtyAsync(request, ct);

    public Task<Api.StreamInResponse> StreamInAsync(Api.StreamInRequest request, Stream archive, CancellationToken ct) =>
        api.StreamInAsync(request, GardenApi.Chunks(archive, ct), ct);

    /// <summary>The first piece is read before answering: a failure to start (unknown container, missing path) is then
    /// this call's error, not a body that ends early.</summary>
    public async Task<Stream> StreamOutAsync(Api.StreamOutRequest request, CancellationToken ct)
    {
        var chunks = api.StreamOut(request, ct).GetAsyncEnumerator(ct);
        try
        {
            var any = await chunks.MoveNextAsync();
            return new ChunkStream(chunks, any ? chunks.Current.Data.Memory : null);
        }
        catch
        {
            await chunks.DisposeAsync();
            throw;
        }
    }

    public async Task<IGardenProcess> RunAsync(Api.RunRequest request, CancellationToken ct) => new Process(await api.RunAsync(request, ct));

    public async Task<IGardenProcess> AttachAsync(Api.AttachRequest request, CancellationToken ct) => new Process(await api.AttachAsync(request, ct));

    /// <summary>Nothing to hold: every request that names a container restarts its grace timer in the container actor,
    /// and a Run or Attach (the IApiProcess this backend holds for the connection) counts as an attached client, which
    /// pauses it until the connection ends — Garden's "grace time counts while nothing touches the container".</summary>
    public IDisposable PauseGraceTime(string handle) => NoHold.Instance;

    private sealed class NoHold : IDisposable
    {
        public static readonly NoHold Instance = new();
        public void Dispose() { }
    }

    private sealed class Process(IApiProcess process) : IGardenProcess
    {
        public string ProcessId => process.ProcessId;
        public IAsyncEnumerable<Api.ProcessEvent> Events => process.Events();
        public Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct) => process.WriteStdinAsync(data, ct);
        public Task CloseStdinAsync(CancellationToken ct) => process.CloseStdinAsync(ct);
        public ValueTask DisposeAsync() => process.DisposeAsync();
    }

    /// <summary>StreamOut's pieces as a read-only stream; a failure of the tool surfaces from a read.</summary>
    private sealed class ChunkStream(IAsyncEnumerator<Api.StreamOutChunk> chunks, ReadOnlyMemory<byte>? first) : ReadOnlyStream
    {
        private ReadOnlyMemory<byte> _current = first ?? ReadOnlyMemory<byte>.Empty;
        private bool _ended = first is null;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_current.IsEmpty)
            {
                if (_ended) return 0;
                if (!await chunks.MoveNextAsync()) { _ended = true; return 0; }
                _current = chunks.Current.Data.Memory;
            }
            var n = Math.Min(buffer.Length, _current.Length);
            _current[..n].CopyTo(buffer);
            _current = _current[n..];
            return n;
        }

        private int _disposed;

        /// <summary>Ends the tool if it still runs (the core kills an abandoned transfer).</summary>
        public override async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) await chunks.DisposeAsync();
            GC.SuppressFinalize(this);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0) chunks.DisposeAsync().AsTask().GetAwaiter().GetResult();
            base.Dispose(disposing);
        }
    }
}
