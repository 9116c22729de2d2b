using System.Net;
using System.Net.Sockets;
using Garden.Protocol.Api;
using Google.Protobuf;
using Grpc.Core;
using Status = Grpc.Core.Status;
using Grpc.Net.Client;

namespace Garden.Protocol.Client;

/// <summary>IGardenClient over the generated garden.v1 client, whatever carries its calls (a gRPC channel, or
/// Akka.Remote through AkkaCallInvoker, in Garden.Protocol.Remote): the operations are written once for both transports.</summary>
/// <param name="serializesOnWrite">The transport has serialized a request message when its WriteAsync completes (gRPC,
/// without a retry policy); Akka.Remote has not (it serializes on its own thread later).</param>
public class GardenClient(Api.Garden.GardenClient stub, Action? dispose = null, bool serializesOnWrite = false) : IGardenClient
{
    /// <summary>The size of a StreamIn message's piece of the archive (gardend hands the agent pieces of this size too).</summary>
    public const int StreamPieceBytes = 256 * 1024;

    /// <summary>A piece of a buffer the caller refills after each write: wrapped, not copied, where the transport serializes
    /// the message before its WriteAsync completes; copied where it may still read it later (Akka.Remote: wrapped, the
    /// next read would change a piece not yet sent).</summary>
    public static ByteString StreamPiece(byte[] buffer, int count, bool serializesOnWrite) =>
        serializesOnWrite ? UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, count)) : ByteString.CopyFrom(buffer, 0, count);

    public Api.Garden.GardenClient Stub { get; } = stub;

    internal static async Task<T> Call<T>(Func<Task<T>> call)
    {
        try { return await call().ConfigureAwait(false); }
        catch (RpcException e) { throw new GardenClientException(e.StatusCode.ToString(), e.Status.Detail, e); }
    }

    internal static Task Call(Func<Task> call) => Call(async () => { await call().ConfigureAwait(false); return true; });

    public Task<PingResponse> PingAsync(CancellationToken ct = default) => Call(() => Stub.PingAsync(new PingRequest(), cancellationToken: ct).ResponseAsync);

    public Task<CapacityResponse> CapacityAsync(CancellationToken ct = default) =>
        Call(() => Stub.CapacityAsync(new CapacityRequest(), cancellationToken: ct).ResponseAsync);

    public async Task<string> CreateAsync(ContainerSpec spec, CancellationToken ct = default) =>
        (await Call(() => Stub.CreateAsync(new CreateRequest { Spec = spec }, cancellationToken: ct).ResponseAsync)).Handle;

    public Task DestroyAsync(string handle, CancellationToken ct = default) =>
        Call(() => Stub.DestroyAsync(new DestroyRequest { Handle = handle }, cancellationToken: ct).ResponseAsync);

    public async Task<IReadOnlyList<string>> ListAsync(IReadOnlyDictionary<string, string>? properties = null, CancellationToken ct = default)
    {
        var request = new ListRequest();
        if (properties is not null) request.Properties.Add(properties.ToDictionary());
        return [.. (await Call(() => Stub.ListAsync(request, cancellationToken: ct).ResponseAsync)).Handles];
    }

    public Task<ContainerInfo> InfoAsync(string handle, CancellationToken ct = default) =>
        Call(() => Stub.InfoAsync(new InfoRequest { Handle = handle }, cancellationToken: ct).ResponseAsync);

    public Task<BulkInfoResponse> BulkInfoAsync(IEnumerable<string> handles, CancellationToken ct = default) =>
        Call(() => Stub.BulkInfoAsync(new BulkInfoRequest { Handles = { handles } }, cancellationToken: ct).ResponseAsync);

    public Task StopAsync(string handle, bool kill = false, CancellationToken ct = default) =>
        Call(() => Stub.StopAsync(new StopRequest { Handle = handle, Kill = kill }, cancellationToken: ct).ResponseAsync);

    public Task<ProcessCall> RunAsync(string handle, ProcessSpec spec, bool detach = false, CancellationToken ct = default) =>
        Start(Stub.Run(cancellationToken: ct), new RunRequest { Handle = handle, Spec = spec, Detach = detach },
            chunk => new RunRequest { Stdin = chunk }, ct);

    public Task<ProcessCall> AttachAsync(string handle, string processId, ulong fromOffset = 0, CancellationToken ct = default) =>
        Start(Stub.Attach(cancellationToken: ct), new AttachRequest { Handle = handle, ProcessId = processId, FromOffset = fromOffset },
            chunk => new AttachRequest { Stdin = chunk }, ct);

    /// <summary>Sends the first message and waits for Started, so a bad request fails here, not at the first read.</summary>
    private static Task<ProcessCall> Start<TRequest>(AsyncDuplexStreamingCall<TRequest, ProcessEvent> call, TRequest first,
        Func<StdinChunk, TRequest> stdin, CancellationToken ct) => Call(async () =>
    {
        try
        {
            await call.RequestStream.WriteAsync(first).ConfigureAwait(false);
            if (!await call.ResponseStream.MoveNext(ct).ConfigureAwait(false) || call.ResponseStream.Current.KindCase != ProcessEvent.KindOneofCase.Started)
                throw new RpcException(new Status(StatusCode.Internal, "the process stream did not begin with Started"));
            return new ProcessCall(call, call.ResponseStream, chunk => call.RequestStream.WriteAsync(stdin(chunk)),
                call.ResponseStream.Current.Started.ProcessId);
        }
        catch
        {
            call.Dispose();
            throw;
        }
    });

    public Task SignalAsync(string handle, string processId, int signal, CancellationToken ct = default) =>
        Call(() => Stub.SignalAsync(new SignalRequest { Handle = handle, ProcessId = processId, Signal = signal }, cancellationToken: ct).ResponseAsync);

    public async Task<IReadOnlyDictionary<string, string>> PropertiesAsync(string handle, CancellationToken ct = default) =>
        (await Call(() => Stub.PropertiesAsync(new PropertiesRequest { Handle = handle }, cancellationToken: ct).ResponseAsync)).Properties.ToDictionary();

    public async Task<string> GetPropertyAsync(string handle, string key, CancellationToken ct = default) =>
        (await Call(() => Stub.GetPropertyAsync(new GetPropertyRequest { Handle = handle, Key = key }, cancellationToken: ct).ResponseAsync)).Value;

    public Task SetPropertyAsync(string handle, string key, string value, CancellationToken ct = default) =>
        Call(() => Stub.SetPropertyAsync(new SetPropertyRequest { Handle = handle, Key = key, Value = value }, cancellationToken: ct).ResponseAsync);

    public Task RemovePropertyAsync(string handle, string key, CancellationToken ct = default) =>
        Call(() => Stub.RemovePropertyAsync(new RemovePropertyRequest { Handle = handle, Key = key }, cancellationToken: ct).ResponseAsync);

    public async Task<Limits> LimitAsync(string handle, Limits change, CancellationToken ct = default) =>
        (await Call(() => Stub.LimitAsync(new LimitRequest { Handle = handle, Limits = change }, cancellationToken: ct).ResponseAsync)).Limits;

    public async Task<Limits> CurrentLimitsAsync(string handle, CancellationToken ct = default) =>
        (await Call(() => Stub.CurrentLimitsAsync(new CurrentLimitsRequest { Handle = handle }, cancellationToken: ct).ResponseAsync)).Limits;

    public Task<ContainerMetrics> MetricsAsync(string handle, CancellationToken ct = default) =>
        Call(() => Stub.MetricsAsync(new MetricsRequest { Handle = handle }, cancellationToken: ct).ResponseAsync);

    public Task<NetInResponse> NetInAsync(string handle, uint hostPort, uint containerPort, CancellationToken ct = default) =>
        Call(() => Stub.NetInAsync(new NetInRequest { Handle = handle, HostPort = hostPort, ContainerPort = containerPort }, cancellationToken: ct).ResponseAsync);

    public Task NetOutAsync(string handle, NetOutRule rule, CancellationToken ct = default) =>
        Call(() => Stub.NetOutAsync(new NetOutRequest { Handle = handle, Rule = rule }, cancellationToken: ct).ResponseAsync);

    public Task BulkNetOutAsync(string handle, IEnumerable<NetOutRule> rules, CancellationToken ct = default) =>
        Call(() => Stub.BulkNetOutAsync(new BulkNetOutRequest { Handle = handle, Rules = { rules } }, cancellationToken: ct).ResponseAsync);

    public Task<BulkMetricsResponse> BulkMetricsAsync(IEnumerable<string> handles, CancellationToken ct = default) =>
        Call(() => Stub.BulkMetricsAsync(new BulkMetricsRequest { Handles = { handles } }, cancellationToken: ct).ResponseAsync);

    public Task SetTtyAsync(string handle, string processId, TtySpec size, CancellationToken ct = default) =>
        Call(() => Stub.SetTtyAsync(new SetTtyRequest { Handle = handle, ProcessId = processId, Size = size }, cancellationToken: ct).ResponseAsync);

    public Task SetGraceTimeAsync(string handle, TimeSpan graceTime, CancellationToken ct = default) =>
        Call(() => Stub.SetGraceTimeAsync(new SetGraceTimeRequest { Handle = handle, GraceTimeMs = (ulong)graceTime.TotalMilliseconds },
            cancellationToken: ct).ResponseAsync);

    /// <summary>The first message names the destination, the next ones carry the tar in pieces of 256 KiB out of one
    /// buffer (<see cref="StreamPiece"/>).</summary>
    public Task StreamInAsync(string handle, string path, Stream archive, string user = "", CancellationToken ct = default) => Call(async () =>
    {
        using var call = Stub.StreamIn(cancellationToken: ct);
        await call.RequestStream.WriteAsync(new StreamInRequest { Handle = handle, Path = path, User = user }).ConfigureAwait(false);
        var buffer = new byte[StreamPieceBytes];
        int n;
        while ((n = await archive.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            await call.RequestStream.WriteAsync(new StreamInRequest { Data = StreamPiece(buffer, n, serializesOnWrite) }).ConfigureAwait(false);
        await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        await call.ResponseAsync.ConfigureAwait(false);
    });

    public Task StreamOutAsync(string handle, string path, Stream destination, string user = "", CancellationToken ct = default) => Call(async () =>
    {
        using var call = Stub.StreamOut(new StreamOutRequest { Handle = handle, Path = path, User = user }, cancellationToken: ct);
        while (await call.ResponseStream.MoveNext(ct).ConfigureAwait(false))
            await destination.WriteAsync(call.ResponseStream.Current.Data.Memory, ct).ConfigureAwait(false);
    });

    public Task<EventStream> EventsAsync(string handle = "", CancellationToken ct = default) => Call(async () =>
    {
        var call = Stub.Events(new EventsRequest { Handle = handle }, cancellationToken: ct);
        try
        {
            await call.ResponseHeadersAsync.ConfigureAwait(false); // gardend has subscribed
            return new EventStream(call, call.ResponseStream);
        }
        catch
        {
            call.Dispose();
            throw;
        }
    });

    public virtual ValueTask DisposeAsync()
    {
        dispose?.Invoke();
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}

/// <summary>gRPC: HTTP/2 cleartext over gardend's Unix socket (or a TCP address).</summary>
public sealed class GrpcGardenClient : GardenClient
{
    private GrpcGardenClient(GrpcChannel channel) : base(new Api.Garden.GardenClient(channel), channel.Dispose, serializesOnWrite: true) { }

    public static GrpcGardenClient ForUnixSocket(string path) => new(UnixSocketChannel(path));

    /// <summary>A channel to gardend's Unix socket (HTTP/2 cleartext, messages up to 64 MiB): the CLI's, and the bench
    /// tools' for the generated client.</summary>
    public static GrpcChannel UnixSocketChannel(string path)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true, MaxReceiveMessageSize = 64 << 20 });
    }

    public static GrpcGardenClient ForAddress(string uri) =>
        new(GrpcChannel.ForAddress(uri, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 }));
}
