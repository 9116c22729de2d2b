using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using Garden.Protocol.Remote;

namespace Garden.Protocol.Client;

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
    /// <summary>Transport settings gardend and clients share: API messages up to 16 MiB (Akka's default is 128 kB), written
    /// by ApiSerializer (<see cref="ApiConfig"/>).</summary>
    public static readonly Config TransportDefaults = ConfigurationFactory.ParseString("""
        akka.remote.dot-netty.tcp {
          maximum-frame-size = 16777216b
          send-buffer-size = 2097152b
          receive-buffer-size = 2097152b
        }
        """).WithFallback(ApiConfig.Default());

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
            """).WithFallback(TransportDefaults);
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
