using System.Net;
using System.Net.Sockets;
using Garden.Cli.Args;
using Grpc.Net.Client;

namespace Garden.Cli;

/// <summary>gardend could not be connected to; carried out of the HTTP stack inside the RpcException.</summary>
internal sealed class DaemonUnreachableException(GardenAddress address, string reason)
    : IOException($"cannot reach gardend at {address}: {reason}")
{
    public GardenAddress Address { get; } = address;
    public string Reason { get; } = reason;
}

/// <summary>Makes the gRPC channel to gardend: HTTP/2 cleartext over a Unix socket or TCP.</summary>
internal static class GardenChannel
{
    public static GrpcChannel Create(GardenAddress address)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = (_, ct) => ConnectAsync(address, ct),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        };
        // Over a Unix socket the authority is only a label; over TCP it names the host.
        var uri = address.IsUnix ? "http://localhost"
            : address.Host!.Contains(':') ? $"http://[{address.Host}]:{address.Port}" : $"http://{address.Host}:{address.Port}";
        return GrpcChannel.ForAddress(uri, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = 64 * 1024 * 1024,
        });
    }

    /// <summary>Says what a failed connect means; ENOENT on a Unix socket surfaces as "Cannot assign requested address".</summary>
    private static string Reason(GardenAddress address, Exception e)
    {
        if (address.IsUnix && e is SocketException se)
        {
            var path = address.SocketPath!;
            if (!File.Exists(path) && !Directory.Exists(path)) return "no such socket (is gardend running?)";
            if (se.SocketErrorCode == SocketError.ConnectionRefused) return "connection refused (is gardend running?)";
        }
        return e.Message;
    }

    private static async ValueTask<Stream> ConnectAsync(GardenAddress address, CancellationToken ct)
    {
        Socket? socket = null;
        try
        {
            EndPoint endPoint;
            if (address.IsUnix)
            {
                socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                endPoint = new UnixDomainSocketEndPoint(address.SocketPath!);
            }
            else
            {
                socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                endPoint = new DnsEndPoint(address.Host!, address.Port);
            }
            await socket.ConnectAsync(endPoint, ct).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch (Exception e) when (e is SocketException or ArgumentException or IOException)
        {
            socket?.Dispose();
            throw new DaemonUnreachableException(address, Reason(address, e));
        }
    }
}
