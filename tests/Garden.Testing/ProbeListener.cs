using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Garden.Testing;

/// <summary>A host service an attack aims at: a TCP listener (on 127.0.0.1, on IPv6 any, ...) that records every
/// connection it accepts and what the peer sent, so an escape test asserts it saw nothing, and its control that it saw
/// the attack.</summary>
public sealed class ProbeListener : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _seen = [];

    public int Port { get; }

    public ProbeListener(IPAddress address)
    {
        _listener = new TcpListener(address, 0);
        if (address.AddressFamily == AddressFamily.InterNetworkV6) _listener.Server.DualMode = false;
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = Task.Run(AcceptLoop);
    }

    /// <summary>"PEER: DATA" per accepted connection.</summary>
    public IReadOnlyList<string> Seen
    {
        get { lock (_seen) return [.. _seen]; }
    }

    /// <summary>Waits until a connection was seen or the time is up; returns what was seen.</summary>
    public async Task<IReadOnlyList<string>> WaitAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Seen.Count == 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        await Task.Delay(200); // the data that follows the handshake
        // and, under load, until each connection seen has its data read (or its 2 s read gave up)
        var reads = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        while (Volatile.Read(ref _reading) > 0 && DateTime.UtcNow < reads) await Task.Delay(20);
        return Seen;
    }

    private int _reading;

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket s;
            try { s = await _listener.AcceptSocketAsync(_stop.Token); }
            catch (Exception) { return; }
            Interlocked.Increment(ref _reading);
            _ = Task.Run(async () =>
            {
                using (s)
                try
                {
                    var peer = s.RemoteEndPoint?.ToString() ?? "?";
                    lock (_seen) _seen.Add(peer + ": ");
                    var buf = new byte[256];
                    try
                    {
                        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                        cts.CancelAfter(TimeSpan.FromSeconds(2));
                        var n = await s.ReceiveAsync(buf, SocketFlags.None, cts.Token);
                        lock (_seen) _seen[_seen.IndexOf(peer + ": ")] = peer + ": " + Encoding.ASCII.GetString(buf, 0, n);
                    }
                    catch (Exception) { }
                }
                finally
                {
                    Interlocked.Decrement(ref _reading);
                }
            });
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
