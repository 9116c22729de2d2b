namespace Garden.Cli.Args;

/// <summary>Where gardend listens: a Unix socket path or a TCP host:port (HTTP/2 cleartext).</summary>
public sealed record GardenAddress
{
    public const string DefaultSocket = "/run/garden-actors/garden.sock";
    public const string EnvironmentVariable = "GARDEN_ADDRESS";

    private GardenAddress(string? socketPath, string? host, int port)
    {
        SocketPath = socketPath;
        Host = host;
        Port = port;
    }

    /// <summary>The Unix socket path, or null for TCP.</summary>
    public string? SocketPath { get; }
    /// <summary>The TCP host, or null for a Unix socket.</summary>
    public string? Host { get; }
    public int Port { get; }
    public bool IsUnix => SocketPath is not null;

    /// <summary>akka.tcp://garden@HOST:PORT when gardend is reached over Akka.Remote (its --akka-remote), else null.</summary>
    public string? AkkaAddress { get; private init; }
    public bool IsAkka => AkkaAddress is not null;

    public static GardenAddress Unix(string path) => new(path, null, 0);
    public static GardenAddress Tcp(string host, int port) => new(null, host, port);

    /// <summary>--socket wins, then GARDEN_ADDRESS (when non-empty), then the default socket.</summary>
    public static GardenAddress Resolve(string? socketFlag, string? environment)
    {
        if (socketFlag is not null) return Parse(socketFlag, "--socket");
        if (!string.IsNullOrEmpty(environment)) return Parse(environment, EnvironmentVariable);
        return Unix(DefaultSocket);
    }

    /// <summary>Accepts a path, <c>unix:///path</c> (or <c>unix:path</c>) and <c>tcp://host:port</c>.</summary>
    public static GardenAddress Parse(string text, string source)
    {
        if (string.IsNullOrWhiteSpace(text))
            throw new UsageException($"{source}: empty address");

        if (text.StartsWith("unix:", StringComparison.OrdinalIgnoreCase))
        {
            var path = text["unix:".Length..];
            if (path.StartsWith("//", StringComparison.Ordinal)) path = path[2..];
            if (path.Length == 0)
                throw new UsageException($"{source}: '{text}' has no socket path (use unix:///path/to/garden.sock)");
            return Unix(path);
        }

        if (text.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase))
        {
            var hostPort = text["tcp://".Length..].TrimEnd('/');
            int colon = hostPort.LastIndexOf(':');
            if (colon <= 0 || colon == hostPort.Length - 1)
                throw new UsageException($"{source}: '{text}' needs a host and a port (tcp://host:port)");
            var host = hostPort[..colon];
            if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];   // [::1]:7777
            else if (host.Contains(':'))
                throw new UsageException($"{source}: '{text}': put an IPv6 host in brackets (tcp://[::1]:PORT)");
            if (!int.TryParse(hostPort[(colon + 1)..], System.Globalization.NumberStyles.None, null, out var port) || port is < 1 or > 65535)
                throw new UsageException($"{source}: '{text}' has a bad port (1-65535)");
            if (host.Length == 0)
                throw new UsageException($"{source}: '{text}' has no host");
            return Tcp(host, port);
        }

        var akkaScheme = text.StartsWith("akka.tcp://", StringComparison.OrdinalIgnoreCase) ? "akka.tcp://"
            : text.StartsWith("akka.ssl.tcp://", StringComparison.OrdinalIgnoreCase) ? "akka.ssl.tcp://" : null;
        if (akkaScheme is not null)
        {
            // akka.tcp://garden@HOST:PORT (akka.ssl.tcp:// over TLS) — validated here so a typo is a usage error, not a timeout
            var rest = text[akkaScheme.Length..].TrimEnd('/');
            if (rest.EndsWith("/user/host", StringComparison.Ordinal)) rest = rest[..^"/user/host".Length];
            var at = rest.IndexOf('@');
            var colon = rest.LastIndexOf(':');
            if (at <= 0 || colon < at + 2 || !int.TryParse(rest[(colon + 1)..], System.Globalization.NumberStyles.None, null, out var akkaPort)
                || akkaPort is < 1 or > 65535)
                throw new UsageException($"{source}: '{text}' is not an Akka.Remote address (akka.tcp://garden@HOST:PORT)");
            return new GardenAddress(null, rest[(at + 1)..colon].Trim('[', ']'), akkaPort) { AkkaAddress = akkaScheme + rest };
        }

        if (text.Contains("://", StringComparison.Ordinal))
            throw new UsageException($"{source}: unsupported address '{text}' (use a socket path, unix:///path, tcp://host:port or akka.tcp://garden@host:port)");

        return Unix(text);
    }

    public override string ToString() => IsAkka ? AkkaAddress! : IsUnix
        ? SocketPath!
        : Host!.Contains(':') ? $"tcp://[{Host}]:{Port}" : $"tcp://{Host}:{Port}";
}
