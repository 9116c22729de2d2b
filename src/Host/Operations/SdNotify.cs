using System.Net.Sockets;
using System.Text;
using Garden.Host.ApiCore;
using Garden.Protocol.Api;

namespace Garden.Host.Operations;

/// <summary>systemd's readiness protocol (sd_notify(3)), without libsystemd: when started by a unit of Type=notify,
/// gardend finds the service manager's datagram socket in <c>NOTIFY_SOCKET</c> (a path, or an abstract name written with a
/// leading '@') and sends it newline-separated assignments: <c>READY=1</c> once it serves, <c>STOPPING=1</c> when it begins
/// to stop, <c>STATUS=...</c> with each. The variable is removed from gardend's environment when read (sd_notify's
/// unset_environment), so no child inherits it: runc, given a NOTIFY_SOCKET, would take the container's readiness into its
/// own hands. A send that fails is logged and ignored: the service manager is the one to act on a silence.</summary>
public sealed class SdNotify : IDisposable
{
    public const string Variable = "NOTIFY_SOCKET";

    private readonly Socket _socket;
    private readonly UnixDomainSocketEndPoint _to;

    private SdNotify(string address)
    {
        Address = address;
        // '@' stands for the abstract namespace: the name's first byte is NUL on the wire
        _to = new UnixDomainSocketEndPoint(address[0] == '@' ? "\0" + address[1..] : address);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>The socket as <c>NOTIFY_SOCKET</c> named it.</summary>
    public string Address { get; }

    /// <summary>The notifier <c>NOTIFY_SOCKET</c> names, and the variable removed; null when it is unset or is not a unix
    /// socket address (an absolute path or '@name'; systemd's vsock form is not supported) — then, as sd_notify does,
    /// nothing is sent.</summary>
    public static SdNotify? FromEnvironment()
    {
        var address = Environment.GetEnvironmentVariable(Variable);
        Environment.SetEnvironmentVariable(Variable, null);
        if (string.IsNullOrEmpty(address) || address.Length < 2 || (address[0] != '/' && address[0] != '@')) return null;
        return new SdNotify(address);
    }

    /// <summary>Sends one datagram: each assignment on its own line. Throws on a send that fails.</summary>
    public void Send(params string[] assignments)
    {
        var datagram = Encoding.UTF8.GetBytes(string.Concat(assignments.Select(a => a + "\n")));
        _socket.SendTo(datagram, SocketFlags.None, _to);
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>Tells the service manager when gardend serves and when it stops (<see cref="SdNotify"/>). Ready means the gRPC
/// socket answers: once the host has started Kestrel on it, the API core is pinged until the recovery has finished
/// (a Ping during recovery is Unavailable), and only then <c>READY=1</c> is sent. <c>STOPPING=1</c> goes out as the stop
/// begins (SIGTERM).</summary>
public sealed class Readiness(SdNotify notify, IServiceProvider services, GardendSettings settings, IHostApplicationLifetime lifetime,
    ILogger<Readiness> log) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() => _ = AnnounceAsync());
        lifetime.ApplicationStopping.Register(() =>
        {
            _stopping.Cancel();
            Send("STOPPING=1", "STATUS=stopping; containers keep running");
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task AnnounceAsync()
    {
        var api = services.GetRequiredService<GardenApi>(); // made once the actor system runs
        Send($"STATUS=recovering; gRPC on unix:{settings.Gateway.Socket}");
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await api.PingAsync(new PingRequest(), _stopping.Token);
                Send("READY=1", $"STATUS=serving on unix:{settings.Gateway.Socket}");
                return;
            }
            catch (Exception) when (!_stopping.IsCancellationRequested) // recovering: not yet
            {
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), _stopping.Token);
                }
                catch (OperationCanceledException) { return; }
            }
            catch (Exception)
            {
                return;
            }
        }
    }

    private void Send(params string[] assignments)
    {
        try
        {
            notify.Send(assignments);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            log.LogWarning("systemd notification {What} to {Socket} failed: {Error}", assignments[0], notify.Address, e.Message);
        }
    }
}
