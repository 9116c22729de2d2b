using Garden.Protocol.Api;

namespace Garden.Protocol.Client;

/// <summary>A failed call, the same on both transports: the gRPC status code name (NotFound, InvalidArgument, ...)
/// and gardend's message.</summary>
public sealed class GardenClientException(string code, string message, Exception? inner = null) : Exception($"{code}: {message}", inner)
{
    public string Code { get; } = code;
    public string Detail { get; } = message;
}

/// <summary>gardend's API for programs, over gRPC (<see cref="GrpcGardenClient"/>) or Akka.Remote
/// (<see cref="AkkaGardenClient"/>). Requests and responses are the garden.v1 messages; every failure is a
/// <see cref="GardenClientException"/>.</summary>
public interface IGardenClient : IAsyncDisposable
{
    Task<PingResponse> PingAsync(CancellationToken ct = default);
    Task<CapacityResponse> CapacityAsync(CancellationToken ct = default);
    Task<string> CreateAsync(ContainerSpec spec, CancellationToken ct = default);
    Task DestroyAsync(string handle, CancellationToken ct = default);
    Task<IReadOnlyList<string>> ListAsync(IReadOnlyDictionary<string, string>? properties = null, CancellationToken ct = default);
    Task<ContainerInfo> InfoAsync(string handle, CancellationToken ct = default);
    Task<BulkInfoResponse> BulkInfoAsync(IEnumerable<string> handles, CancellationToken ct = default);
    Task StopAsync(string handle, bool kill = false, CancellationToken ct = default);
    /// <summary>Starts a process and streams it (detach: returns after it started, no streams).</summary>
    Task<ProcessCall> RunAsync(string handle, ProcessSpec spec, bool detach = false, CancellationToken ct = default);
    Task<ProcessCall> AttachAsync(string handle, string processId, ulong fromOffset = 0, CancellationToken ct = default);
    Task SignalAsync(string handle, string processId, int signal, CancellationToken ct = default);
    Task<IReadOnlyDictionary<string, string>> PropertiesAsync(string handle, CancellationToken ct = default);
    Task<string> GetPropertyAsync(string handle, string key, CancellationToken ct = default);
    Task SetPropertyAsync(string handle, string key, string value, CancellationToken ct = default);
    Task RemovePropertyAsync(string handle, string key, CancellationToken ct = default);
    Task<Limits> LimitAsync(string handle, Limits change, CancellationToken ct = default);
    Task<Limits> CurrentLimitsAsync(string handle, CancellationToken ct = default);
    Task<ContainerMetrics> MetricsAsync(string handle, CancellationToken ct = default);
    Task<NetInResponse> NetInAsync(string handle, uint hostPort, uint containerPort, CancellationToken ct = default);
    Task NetOutAsync(string handle, NetOutRule rule, CancellationToken ct = default);
    Task BulkNetOutAsync(string handle, IEnumerable<NetOutRule> rules, CancellationToken ct = default);
    Task<BulkMetricsResponse> BulkMetricsAsync(IEnumerable<string> handles, CancellationToken ct = default);
    Task SetTtyAsync(string handle, string processId, TtySpec size, CancellationToken ct = default);
    /// <summary>0 = the container is never reaped.</summary>
    Task SetGraceTimeAsync(string handle, TimeSpan graceTime, CancellationToken ct = default);
    /// <summary>Extracts the tar read from <paramref name="archive"/> into <paramref name="path"/> (a directory) in the container.</summary>
    Task StreamInAsync(string handle, string path, Stream archive, string user = "", CancellationToken ct = default);
    /// <summary>Writes the tar of <paramref name="path"/> in the container to <paramref name="destination"/>.</summary>
    Task StreamOutAsync(string handle, string path, Stream destination, string user = "", CancellationToken ct = default);
    /// <summary>Returns once gardend has subscribed: every event published after this returns is in the stream.
    /// handle "" = every container.</summary>
    Task<EventStream> EventsAsync(string handle = "", CancellationToken ct = default);
}

/// <summary>What a finished process left: its output and exit.</summary>
public sealed record ProcessResult(string ProcessId, byte[] Stdout, byte[] Stderr, int ExitCode, int Signal)
{
    public string StdoutText => System.Text.Encoding.UTF8.GetString(Stdout);
    public string StderrText => System.Text.Encoding.UTF8.GetString(Stderr);
}
