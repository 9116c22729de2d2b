using Akka.Configuration;
using Garden.Actors;
using Garden.Host.Remote;

namespace Garden.Host;

/// <summary>Everything gardend is configured with, read once at start from flags → <c>--config</c> file → the embedded
/// reference.conf of each assembly (<see cref="GardendOptions.BuildConfig"/>), and immutable from then on: the daemon's
/// settings (<see cref="GardenSettings"/>), the gateway's (<see cref="GatewaySettings"/>), the Akka.Remote endpoint's
/// (<see cref="AkkaRemote"/>, null when off) and the HOCON the actor system starts with, which names the journal.</summary>
public sealed record GardendSettings(GardenSettings Garden, GatewaySettings Gateway, AkkaRemote? Remote, Config Akka)
{
    /// <summary>Garden's HTTP API (<c>--garden-http</c>, <c>garden.garden-http</c>); null when off (the default).</summary>
    public global::Garden.Host.GardenHttp.GardenHttpFrontDoor? GardenHttp { get; init; }

    /// <summary>The debug endpoint (<c>garden.garden-http.debug-address</c>, GET /debug/vars); null when off (the default).</summary>
    public global::Garden.Host.GardenHttp.GardenDebugDoor? GardenDebug { get; init; }

    /// <summary>The metrics listener (<c>garden.metrics.address</c>); null when off (the default).</summary>
    public Operations.MetricsDoor? Metrics { get; init; }

    /// <summary><c>garden.log.format</c> (<c>--log-format</c>): true for JSON lines, false for text (the default).</summary>
    public bool JsonLogs { get; init; }

    /// <summary>Throws <see cref="StartupFailure"/> (exit 2) naming the setting or flag that is wrong.</summary>
    public static GardendSettings Load(GardendOptions options)
    {
        Config config;
        try
        {
            config = options.BuildConfig();
        }
        catch (Exception e) when (e is ArgumentException or ConfigurationException)
        {
            throw new StartupFailure(2, $"bad configuration: {e.Message}");
        }
        AkkaRemote? remote;
        try
        {
            remote = AkkaRemote.FromConfig(config);
        }
        catch (ArgumentException e)
        {
            throw new StartupFailure(2, e.Message);
        }
        try
        {
            var garden = GardenSettings.Create(config);
            var gardenHttp = global::Garden.Host.GardenHttp.GardenHttpFrontDoor.FromConfig(config);
            return new GardendSettings(garden, GatewaySettings.From(config), remote, JournalFile.AkkaConfig(garden.JournalPath).WithFallback(config))
            {
                GardenHttp = gardenHttp,
                GardenDebug = global::Garden.Host.GardenHttp.GardenDebugDoor.FromConfig(config),
                Metrics = Operations.MetricsDoor.FromConfig(config),
                JsonLogs = config.GetString("garden.log.format", "text").Trim() switch
                {
                    "text" => false,
                    "json" => true,
                    var other => throw new StartupFailure(2, $"garden.log.format (--log-format): \"{other}\" is neither text nor json"),
                },
            };
        }
        catch (ConfigurationException e)
        {
            throw new StartupFailure(2, $"bad configuration: {e.Message}");
        }
    }
}

/// <summary>The gRPC gateway: its Unix socket (<c>garden.gateway.socket</c>, <c>--socket</c>; mode 0600) and how long it
/// waits for the actors to answer a request (<c>garden.ask-timeout</c>).</summary>
public sealed record GatewaySettings(string Socket, TimeSpan AskTimeout)
{
    public static GatewaySettings From(Config config)
    {
        var socket = config.GetString("garden.gateway.socket", "");
        if (socket.Length == 0 || socket[0] != '/')
            throw new ConfigurationException($"garden.gateway.socket: \"{socket}\" is not an absolute path");
        var ask = config.GetTimeSpan("garden.ask-timeout", null);
        if (ask <= TimeSpan.Zero) throw new ConfigurationException($"garden.ask-timeout: {ask} is not more than 0");
        return new GatewaySettings(socket, ask);
    }
}

/// <summary>A start that cannot go on: what to print (after "gardend: ") and the exit code.</summary>
public sealed class StartupFailure(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
