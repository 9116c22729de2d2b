using System.Net;
using Akka.Configuration;

namespace Garden.Host.Remote;

/// <summary>gardend's Akka.Remote endpoint (`--akka-remote HOST:PORT`, `garden.akka-remote.address`): off unless asked.
/// Whoever can reach the port can create containers and run processes as root in them, and Akka.Remote has no
/// authentication of its own: a loopback port is open to every local user (unlike the 0600 Unix socket), and any other
/// address is refused without TLS (<c>garden.akka-remote.tls</c>, mutual: clients present a certificate too).</summary>
public sealed record AkkaRemote(string Host, int Port, string? CertificatePath, string CertificatePassword, bool SuppressValidation)
{
    public const string SystemName = "garden";
    public const string Flag = "--akka-remote";

    /// <summary>akka.tcp://garden@HOST:PORT, or akka.ssl.tcp://garden@HOST:PORT with TLS.</summary>
    public string Address => $"{(CertificatePath is null ? "akka.tcp" : "akka.ssl.tcp")}://{SystemName}@{(Host.Contains(':') ? $"[{Host}]" : Host)}:{Port}";

    public bool IsLoopback => Host == "localhost" || (IPAddress.TryParse(Host, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>null when Akka.Remote is off (the default). Throws ArgumentException naming the flag and setting when the
    /// address is malformed, or not loopback and without TLS.</summary>
    public static AkkaRemote? FromConfig(Config config)
    {
        var address = config.GetString("garden.akka-remote.address", "");
        if (string.IsNullOrWhiteSpace(address)) return null;
        var (host, port) = ParseHostPort(address);
        var cert = config.GetString("garden.akka-remote.tls.certificate-path", "");
        var remote = new AkkaRemote(host, port, string.IsNullOrEmpty(cert) ? null : cert,
            config.GetString("garden.akka-remote.tls.certificate-password", ""),
            config.GetBoolean("garden.akka-remote.tls.suppress-validation", false));
        if (!remote.IsLoopback && remote.CertificatePath is null)
            throw new ArgumentException(
                $"{Flag} {address}: {host} is not a loopback address, and Akka.Remote has no authentication of its own: " +
                "set garden.akka-remote.tls.certificate-path (and certificate-password) to serve it over TLS, or use 127.0.0.1");
        if (remote.CertificatePath is { } path && !File.Exists(path))
            throw new ArgumentException($"garden.akka-remote.tls.certificate-path: {path} does not exist");
        return remote;
    }

    /// <summary>HOST:PORT, [IPv6]:PORT; port 1-65535.</summary>
    public static (string Host, int Port) ParseHostPort(string text)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1) throw new ArgumentException($"{Flag} {text}: expected HOST:PORT (e.g. 127.0.0.1:2552)");
        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        else if (host.Contains(':')) throw new ArgumentException($"{Flag} {text}: put an IPv6 host in brackets ([::1]:2552)");
        if (!int.TryParse(text[(colon + 1)..], System.Globalization.NumberStyles.None, null, out var port) || port is < 1 or > 65535)
            throw new ArgumentException($"{Flag} {text}: bad port (1-65535)");
        return (host, port);
    }

    /// <summary>The Akka settings that turn the remote provider on, for this address.</summary>
    public Config ToAkkaConfig()
    {
        static string Q(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        var tls = CertificatePath is null ? "enable-ssl = false" : $$"""
            enable-ssl = true
            ssl {
              certificate { path = {{Q(CertificatePath)}}, password = {{Q(CertificatePassword)}} }
              suppress-validation = {{(SuppressValidation ? "true" : "false")}}
            }
            """;
        return ConfigurationFactory.ParseString($$"""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp {
              hostname = {{Q(Host)}}
              port = {{Port}}
              {{tls}}
            }
            """).WithFallback(Hardening).WithFallback(Garden.Protocol.Client.AkkaGardenClient.TransportDefaults);
    }

    /// <summary>What a peer can make the endpoint system do. It is a system of its own holding only /user/host (the
    /// HostActor and the containers live in gardend's local-only system, so no peer can address them). Untrusted mode
    /// drops remote deployment, PoisonPill and Kill, and every actor selection but one to /user/host; every serializer
    /// a message could arrive with is either ApiSerializer (garden.v1 protobuf), Akka's container of selections, or one
    /// of the filters in InboundFilter.cs (Identify and heartbeats; death watch between a peer's actors and ours);
    /// the rest — Akka's JSON (CLR type names), bytes, primitives, protobuf by CLR type, remote deployment, the journal's
    /// records — refuses to deserialize. /user/host is resumed, never restarted, if it throws.</summary>
    public static readonly Config Hardening = ConfigurationFactory.ParseString("""
        akka.remote.untrusted-mode = on
        akka.remote.trusted-selection-paths = ["/user/host"]
        akka.actor.guardian-supervisor-strategy = "Garden.Host.Remote.ResumingGuardianStrategy, gardend"
        akka.actor.serializers {
          json = "Garden.Host.Remote.RefusingSerializer, gardend"
          bytes = "Garden.Host.Remote.RefusingSerializer, gardend"
          primitive = "Garden.Host.Remote.RefusingSerializer, gardend"
          proto = "Garden.Host.Remote.RefusingSerializer, gardend"
          daemon-create = "Garden.Host.Remote.RefusingSerializer, gardend"
          garden-journal = "Garden.Host.Remote.RefusingSerializer, gardend"
          garden-journal-legacy-proto = "Garden.Host.Remote.RefusingSerializer, gardend"
          akka-misc = "Garden.Host.Remote.InboundMiscSerializer, gardend"
          akka-system-msg = "Garden.Host.Remote.InboundSystemMessageSerializer, gardend"
        }
        """);
}
