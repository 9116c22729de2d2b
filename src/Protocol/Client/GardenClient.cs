using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Garden.Protocol.Api;
using Grpc.Core;
using Status = Grpc.Core.Status;
using Grpc.Net.Client;

namespace Garden.Protocol.Client;

/// <summary>IGardenClient over the generated garden.v1 client, whatever carries its calls (a gRPC channel, or
/// Akka.Remote through <see cref="AkkaCallInvoker"/>): the operations are written once for both transports.</summary>
public class GardenClient(Api.Garden.GardenClient stub, Action? dispose = null) : IGardenClient
{
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
    private GrpcGardenClient(GrpcChannel channel) : base(new Api.Garden.GardenClient(channel), channel.Dispose) { }

    public static GrpcGardenClient ForUnixSocket(string path)
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
        return new(GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions { HttpHandler = handler, MaxReceiveMessageSize = 64 << 20 }));
    }

    public static GrpcGardenClient ForAddress(string uri) =>
        new(GrpcChannel.ForAddress(uri, new GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20 }));
}

/// <summary>TLS for Akka.Remote (mutual: the client presents its certificate too). SuppressValidation only for
/// self-signed test certificates.</summary>
public sealed record AkkaTls(string CertificatePath, string CertificatePassword = "", bool SuppressValidation = false)
{
    public static AkkaTls? FromEnvironment() =>
        Environment.GetEnvironmentVariable("GARDEN_AKKA_CERTIFICATE") is { Length: > 0 } path
            ? new AkkaTls(path, Environment.GetEnvironmentVariable("GARDEN_AKKA_CERTIFICATE_PASSWORD") ?? "",
                Environment.GetEnvironmentVariable("GARDEN_AKKA_SUPPRESS_VALIDATION") is "1" or "true")
            : null;
}

/// <summary>Akka.Remote: an ActorSystem of its own with the remote provider, talking to akka.tcp://garden@HOST:PORT/user/host.</summary>
public sealed class AkkaGardenClient : GardenClient
{
    /// <summary>Transport settings gardend and clients share: API messages up to 16 MiB (Akka's default is 128 kB).</summary>
    public static readonly Config TransportDefaults = ConfigurationFactory.ParseString("""
        akka.remote.dot-netty.tcp {
          maximum-frame-size = 16777216b
          send-buffer-size = 2097152b
          receive-buffer-size = 2097152b
        }
        """);

    private readonly ActorSystem _system;

    private AkkaGardenClient(ActorSystem system, AkkaCallInvoker invoker) : base(new Api.Garden.GardenClient(invoker)) => _system = system;

    /// <summary>address: akka.tcp://garden@HOST:PORT (a trailing /user/host is accepted). tls: for a gardend serving
    /// Akka.Remote over TLS (null: from GARDEN_AKKA_CERTIFICATE / GARDEN_AKKA_CERTIFICATE_PASSWORD when set).</summary>
    public static AkkaGardenClient Connect(string address, TimeSpan? timeout = null, AkkaTls? tls = null)
    {
        var (system, invoker) = CreateInvoker(address, timeout ?? TimeSpan.FromSeconds(60), tls: tls);
        return new AkkaGardenClient(system, invoker);
    }

    /// <summary>The client's ActorSystem (loopback, or the local address that routes to gardend; any free port) and
    /// the invoker for the generated client. TLS for a non-loopback gardend: GARDEN_AKKA_CERTIFICATE and
    /// GARDEN_AKKA_CERTIFICATE_PASSWORD (Akka.Remote's TLS is mutual: the client presents a certificate too).</summary>
    public static (ActorSystem System, AkkaCallInvoker Invoker) CreateInvoker(string address, TimeSpan timeout, Config? overrides = null,
        AkkaTls? tls = null)
    {
        var api = ApiPath(address);
        var host = api.Address.Host ?? throw new ArgumentException($"{address}: no host");
        var local = LocalAddressFor(host);
        tls ??= AkkaTls.FromEnvironment();
        if (api.Address.Protocol == "akka.ssl.tcp" && tls is null)
            throw new ArgumentException($"{address}: a TLS address needs a client certificate (GARDEN_AKKA_CERTIFICATE, GARDEN_AKKA_CERTIFICATE_PASSWORD)");
        if (api.Address.Protocol == "akka.tcp" && tls is not null)
            throw new ArgumentException($"{address}: with a certificate, the address is akka.ssl.tcp://garden@HOST:PORT");
        static string Q(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        var tlsConfig = tls is null ? "" : $$"""
            akka.remote.dot-netty.tcp.enable-ssl = true
            akka.remote.dot-netty.tcp.ssl.certificate { path = {{Q(tls.CertificatePath)}}, password = {{Q(tls.CertificatePassword)}} }
            akka.remote.dot-netty.tcp.ssl.suppress-validation = {{(tls.SuppressValidation ? "true" : "false")}}
            """;
        var config = ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp { hostname = {{Q(local)}}, port = 0 }
            akka.loglevel = WARNING
            akka.stdout-loglevel = OFF
            akka.log-dead-letters = off
            akka.log-dead-letters-during-shutdown = off
            akka.remote.log-remote-lifecycle-events = off
            akka.coordinated-shutdown.exit-clr = off
            akka.coordinated-shutdown.run-by-clr-shutdown-hook = off
            {{tlsConfig}}
            """).WithFallback(TransportDefaults).WithFallback(Journal.ProtocolConfig.Default());
        if (overrides is not null) config = overrides.WithFallback(config);
        var system = ActorSystem.Create("garden-client", config);
        return (system, new AkkaCallInvoker(system, api, timeout));
    }

    /// <summary>akka.tcp://garden@HOST:PORT[/user/host] (akka.ssl.tcp:// with TLS) → the path of gardend's /user/host.</summary>
    public static ActorPath ApiPath(string address)
    {
        var text = address.TrimEnd('/');
        if (!text.EndsWith("/user/host", StringComparison.Ordinal)) text += "/user/host";
        if (!ActorPath.TryParse(text, out var path) || path.Address.Protocol is not ("akka.tcp" or "akka.ssl.tcp") || path.Address.Port is null)
            throw new ArgumentException($"'{address}' is not an Akka.Remote address (akka.tcp://garden@HOST:PORT, or akka.ssl.tcp:// with TLS)");
        return path;
    }

    private static string LocalAddressFor(string host)
    {
        if (host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip))) return "127.0.0.1";
        try
        {
            using var probe = new Socket(SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(host, 9);
            return ((IPEndPoint)probe.LocalEndPoint!).Address.ToString();
        }
        catch (SocketException)
        {
            return Dns.GetHostName();
        }
    }

    public ActorSystem System => _system;

    public override async ValueTask DisposeAsync()
    {
        await _system.Terminate().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
