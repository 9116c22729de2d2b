using Akka.Actor;
using Garden.Protocol.Remote;
using Google.Protobuf;
using Grpc.Core;
using Status = Grpc.Core.Status;

namespace Garden.Protocol.Client;

/// <summary>A gRPC CallInvoker that carries every call of the generated garden.v1 client over Akka.Remote to
/// gardend's /user/host: a unary call is an Ask (response message or ApiError), a streaming call a short-lived client
/// actor (<see cref="StreamClientActor"/>). Code written against the generated client — the CLI, GardenClient — then
/// works unchanged over either transport, and failures surface as the same RpcException (status code + message).</summary>
public sealed class AkkaCallInvoker(ActorSystem system, ActorPath api, TimeSpan timeout) : CallInvoker
{
    public ActorPath Api { get; } = api;

    private ActorSelection Selection => system.ActorSelection(Api);

    public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host,
        CallOptions options, TRequest request) =>
        Unary<TResponse>(method, request, options).GetAwaiter().GetResult();

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host,
        CallOptions options, TRequest request) =>
        new(Unary<TResponse>(method, request, options), Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], () => { });

    private Task? _reachable;

    /// <summary>Akka.Remote does not tell an Ask that the connection was refused (the message goes to dead letters and
    /// the Ask times out): one plain TCP connect first turns "gardend is not there" into an immediate Unavailable.</summary>
    private Task EnsureReachable() => _reachable ??= Probe();

    private async Task Probe()
    {
        var host = Api.Address.Host!;
        var port = Api.Address.Port!.Value;
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await socket.ConnectAsync(host, port, cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or OperationCanceledException)
        {
            _reachable = null;
            throw new RpcException(new Status(StatusCode.Unavailable,
                $"cannot reach gardend at {Api.Address}: {(e is OperationCanceledException ? "connect timed out" : e.Message)} (is gardend running with --akka-remote?)"));
        }
    }

    private async Task<TResponse> Unary<TResponse>(IMethod method, object request, CallOptions options)
    {
        await EnsureReachable().ConfigureAwait(false);
        object reply;
        try
        {
            reply = await Selection.Ask<object>(request, TimeoutOf(options), options.CancellationToken).ConfigureAwait(false);
        }
        catch (AskTimeoutException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable,
                $"{method.Name}: no answer from {Api} within {TimeoutOf(options).TotalSeconds:0}s (is gardend running with --akka-remote?)"));
        }
        catch (OperationCanceledException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, $"{method.Name}: cancelled"));
        }
        return reply switch
        {
            TResponse r => r,
            ApiError e => throw ToRpc(e),
            _ => throw new RpcException(new Status(StatusCode.Internal,
                $"{method.Name}: unexpected reply {(reply as IMessage)?.Descriptor.FullName ?? reply?.GetType().FullName}")),
        };
    }

    private TimeSpan TimeoutOf(CallOptions options) =>
        options.Deadline is { } d && d != DateTime.MaxValue ? (d - DateTime.UtcNow) is var left && left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1)
        : timeout;

    /// <summary>An ApiError as the RpcException gRPC would have thrown.</summary>
    public static RpcException ToRpc(ApiError e) =>
        new(new Status(Enum.TryParse<StatusCode>(e.Code, out var code) ? code : StatusCode.Unknown, e.Message));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(
        Method<TRequest, TResponse> method, string? host, CallOptions options)
    {
        var stream = Open<TResponse>(method, options);
        return new(new Writer<TRequest>(stream), stream.Reader, Task.FromResult(new Metadata()), () => Status.DefaultSuccess, () => [], stream.Dispose);
    }

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method,
        string? host, CallOptions options, TRequest request)
    {
        var stream = Open<TResponse>(method, options);
        stream.Send(request!);
        stream.Send(new StreamEnd());
        // Events: gardend answers Subscribed first, which is what gRPC's response headers say
        return new(stream.Reader, stream.Headers(request is Api.EventsRequest), () => Status.DefaultSuccess, () => [], stream.Dispose);
    }

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(
        Method<TRequest, TResponse> method, string? host, CallOptions options)
    {
        var stream = Open<TResponse>(method, options);
        return new(new Writer<TRequest>(stream), Single(stream.Reader, method.Name), Task.FromResult(new Metadata()),
            () => Status.DefaultSuccess, () => [], stream.Dispose);
    }

    private static async Task<T> Single<T>(IAsyncStreamReader<T> reader, string name)
    {
        if (!await reader.MoveNext(CancellationToken.None).ConfigureAwait(false))
            throw new RpcException(new Status(StatusCode.Internal, $"{name}: the stream ended without a response"));
        var response = reader.Current;
        while (await reader.MoveNext(CancellationToken.None).ConfigureAwait(false)) { }
        return response;
    }

    private ClientStream<TResponse> Open<TResponse>(IMethod method, CallOptions options) where TResponse : class =>
        new(system, Selection, method.Name, TimeoutOf(options), options.CancellationToken, EnsureReachable());

    private sealed class Writer<T>(IClientStream stream) : IClientStreamWriter<T>
    {
        public WriteOptions? WriteOptions { get; set; }
        public Task WriteAsync(T message) { stream.Send(message!); return Task.CompletedTask; }
        public Task CompleteAsync() { stream.Send(new StreamEnd()); return Task.CompletedTask; }
    }
}
