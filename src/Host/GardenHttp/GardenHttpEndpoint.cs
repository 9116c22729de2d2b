using System.Net;
using System.Net.Sockets;
using Akka.Configuration;
using Garden.Host.ApiCore;

namespace Garden.Host.GardenHttp;

/// <summary>gardend's Garden HTTP front door (`--garden-http ADDRESS`, <c>garden.garden-http.address</c>): Garden's own
/// HTTP+JSON API, for gaol, Garden's Go client, Concourse and Diego. Off unless asked. ADDRESS is HOST:PORT or a unix
/// socket path (made 0600). Garden's API has no authentication: whoever reaches it controls every container, so an
/// address other than loopback is refused unless <c>garden.garden-http.allow-non-loopback = on</c>.</summary>
public sealed record GardenHttpFrontDoor(EndPoint EndPoint, string Address)
{
    public const string Flag = "--garden-http";

    public bool IsLocalOnly => GardenHttpServer.IsLocalOnly(EndPoint);

    /// <summary>null when off (the default). Throws <see cref="StartupFailure"/>: exit 2 (a refused setting, as for
    /// --akka-remote) for a malformed address and for a TCP address that is not loopback without allow-non-loopback —
    /// both naming the flag and the setting.</summary>
    public static GardenHttpFrontDoor? FromConfig(Config config)
    {
        var address = config.GetString("garden.garden-http.address", "");
        if (string.IsNullOrWhiteSpace(address)) return null;
        EndPoint endpoint;
        try
        {
            endpoint = GardenHttpServer.ParseAddress(address);
        }
        catch (ArgumentException e)
        {
            throw new StartupFailure(2, $"{Flag} / garden.garden-http.address: {e.Message}");
        }
        var door = new GardenHttpFrontDoor(endpoint, address.Trim());
        if (!door.IsLocalOnly && !config.GetBoolean("garden.garden-http.allow-non-loopback", false))
            throw new StartupFailure(2,
                $"{Flag} {address}: {((IPEndPoint)endpoint).Address} is not a loopback address, and Garden's HTTP API has no " +
                "authentication: whoever reaches the port controls every container. Use 127.0.0.1:PORT or a unix socket path, " +
                "or set garden.garden-http.allow-non-loopback = on to serve it on this address anyway");
        return door;
    }
}

/// <summary>The Garden HTTP server's lifetime in the generic host: started after the actor system (it serves the API
/// core, <see cref="IGardenApi"/>), stopped on SIGTERM before it (hosted services stop in reverse), its unix socket
/// removed then.</summary>
public sealed class GardenHttpEndpoint(GardenHttpFrontDoor door, IServiceProvider services, ILoggerFactory logging) : IHostedService
{
    private GardenHttpServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var server = new GardenHttpServer(new ApiHttpBackend(services.GetRequiredService<IGardenApi>()), new GardenHttpOptions(),
            logging.CreateLogger("GardenHttp"));
        try
        {
            server.Start(door.EndPoint);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            throw new StartupFailure(1, $"{GardenHttpFrontDoor.Flag} {door.Address}: cannot listen: {e.Message}");
        }
        _server = server;
        var where = server.LocalEndPoint is UnixDomainSocketEndPoint u ? $"unix:{u}" : server.LocalEndPoint!.ToString();
        Console.WriteLine($"gardend: Garden HTTP API at {where}" + (door.IsLocalOnly
            ? (door.EndPoint is UnixDomainSocketEndPoint ? " (mode 0600)" : " (no authentication: every local user can reach it)")
            : " (NOT loopback, no authentication: whoever reaches it controls every container)"));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null) await _server.DisposeAsync();
    }
}
