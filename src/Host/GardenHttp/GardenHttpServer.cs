using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Garden.Host.GardenHttp;

/// <summary>Garden's HTTP+JSON API (the one Garden's Go client, gaol, Concourse and Diego speak) on a TCP address or a
/// Unix socket.
/// <para><b>Why a small HTTP/1.1 server of our own on a Socket, and not Kestrel.</b> Four of Garden's routes (Run,
/// Attach, and a process's stdout and stderr) answer with a response head and then use the connection as a raw,
/// two-way byte stream: the client sends newline-delimited JSON (stdin, signals, terminal sizes) right behind its
/// request, and reads raw JSON lines or output bytes behind the head — with no Upgrade header, and the head must be a
/// 2xx that is neither "Connection: close" nor unframed (Go's <c>httputil.ClientConn</c> rejects both). Kestrel's
/// request pipeline cannot do this: its upgrade feature needs <c>Connection: Upgrade</c> and answers 101 (not 2xx to
/// the client); the bytes after Run's body are parsed as the next request; and a response started without a length is
/// chunk-framed, which corrupts the raw stream. It could be done below the pipeline, in Kestrel connection middleware
/// that reads each head itself and hands the other routes back to Kestrel through a replaying pipe — but then this
/// layer parses HTTP anyway and, for the plain routes, must additionally neutralise Kestrel's defaults that break
/// Garden's client: non-JSON 400/404/413 pages, the 30 MB request-body cap (StreamIn tars are larger), the minimum
/// request-body data rate and request-header timeouts (StreamIn may be slow, a Run connection idles for hours), and
/// host filtering. Every Garden client connection carries exactly one request, so the HTTP needed is small (a request
/// head, Content-Length or chunked bodies, three kinds of answer), and owning it makes every byte on the wire ours to
/// decide and to test: the tests assert the exchange byte for byte. It also keeps this transport independent of the
/// gRPC host's Kestrel configuration.</para>
/// <para>Threads are never held by a connection (every read and write is asynchronous); what a client may make the
/// server hold — connections, head size and time, JSON body size and time, buffered output and stdin — is bounded by
/// <see cref="GardenHttpOptions"/>.</para></summary>
public sealed class GardenHttpServer : IAsyncDisposable
{
    private readonly IGardenHttpBackend _backend;
    private readonly GardenHttpOptions _options;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private readonly GardenHandlers _handlers;
    private readonly ProcessStreams _processes;
    private Socket? _listener;
    private Task? _acceptLoop;
    private string? _unixPath;
    private long _lastConnection;

    public GardenHttpServer(IGardenHttpBackend backend, GardenHttpOptions? options = null, ILogger? log = null)
    {
        _backend = backend;
        _options = options ?? new GardenHttpOptions();
        _log = log ?? NullLogger.Instance;
        _handlers = new GardenHandlers(backend, _options, _log);
        _processes = new ProcessStreams(backend, _options, _log, _stopping.Token);
    }

    /// <summary>Where it listens (with the port chosen, when 0 was asked).</summary>
    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    /// <summary>Connections open now.</summary>
    public int Connections => _connections.Count;

    /// <summary>Process stream ids that still hold output for stdout/stderr requests.</summary>
    public int Streams => _processes.Count;

    /// <summary>Binds and listens. A Unix socket is made 0600 before it accepts anything (the API has no
    /// authentication: whoever can connect is as powerful as root); a socket file left by a dead server is replaced,
    /// a live one or any other file is not.</summary>
    public void Start(EndPoint endpoint)
    {
        if (_listener is not null) throw new InvalidOperationException("a Garden HTTP server starts once (make a new one to listen again)");
        Socket listener;
        if (endpoint is UnixDomainSocketEndPoint unix)
        {
            var path = unix.ToString();
            RemoveStaleSocket(path);
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                listener.Bind(unix);
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            catch
            {
                listener.Dispose();
                throw;
            }
            _unixPath = path;
        }
        else
        {
            listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                listener.Bind(endpoint);
            }
            catch
            {
                listener.Dispose();
                throw;
            }
        }
        listener.Listen(512);
        _listener = listener;
        _acceptLoop = AcceptLoopAsync(listener);
        _log.LogInformation("garden-http: Garden API at {Address}", Describe(listener.LocalEndPoint!));
    }

    /// <summary>A path left by a server that died is replaced; one a server listens on, a directory or a file with
    /// content is not. (.NET cannot tell a socket from an empty file without a stat of its own; an empty file is
    /// replaced too.)</summary>
    private static void RemoveStaleSocket(string path)
    {
        if (Directory.Exists(path)) throw new IOException($"{path} is a directory, not a socket");
        if (!File.Exists(path)) return;
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new IOException($"{path} is in use by another server");
            }
            catch (SocketException)
            {
                // nobody listens there
            }
        }
        if (new FileInfo(path).Length > 0) throw new IOException($"{path} exists and is not a socket: not replacing it");
        File.Delete(path);
    }

    private static string Describe(EndPoint e) => e is UnixDomainSocketEndPoint ? $"unix:{e}" : e.ToString()!;

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                // e.g. out of file descriptors: keep serving what is open, try again shortly
                _log.LogWarning("garden-http: accept failed: {Error}", e.Message);
                try
                {
                    await Task.Delay(100, _stopping.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            var id = Interlocked.Increment(ref _lastConnection);
            var full = _connections.Count >= _options.MaxConnections;
            _connections[id] = Task.Run(async () =>
            {
                try
                {
                    if (full) await RefuseAsync(socket);
                    else await ServeAsync(socket);
                }
                catch (Exception e)
                {
                    _log.LogWarning(e, "garden-http: connection failed: {Error}", e.Message);
                }
                finally
                {
                    _connections.TryRemove(id, out _);
                }
            });
        }
    }

    private async Task RefuseAsync(Socket socket)
    {
        await using var conn = new HttpConnection(socket, _options, _stopping.Token);
        _log.LogWarning("garden-http: {Max} connections open: refusing one from {Peer}", _options.MaxConnections, conn.Peer);
        try
        {
            await conn.SendErrorAsync(new Garden.Actors.GardenException(Garden.Actors.ErrorKind.Unavailable,
                $"too many connections (at most {_options.MaxConnections}): try again later"), hijackRoute: false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
        }
    }

    /// <summary>One connection, one request: its head, its route, its answer, and a lingering close.</summary>
    private async Task ServeAsync(Socket socket)
    {
        if (socket.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6) socket.NoDelay = true;
        await using var conn = new HttpConnection(socket, _options, _stopping.Token);
        try
        {
            HttpRequestHead? head;
            try
            {
                head = await conn.ReadHeadAsync();
            }
            catch (HttpProblem p)
            {
                _log.LogDebug("garden-http: {Peer}: {Status} {Error}", conn.Peer, p.Status, p.Message);
                await conn.SendErrorAsync(p, hijackRoute: false);
                await conn.LingerAsync();
                return;
            }
            if (head is null) return;

            RouteMatch match;
            try
            {
                match = GardenRoutes.Match(head.Method, head.Target);
            }
            catch (HttpProblem p)
            {
                _log.LogDebug("garden-http: {Peer}: {Method} {Target}: {Status} {Error}", conn.Peer, head.Method, head.Target, p.Status, p.Message);
                // a process route's answer must not say "Connection: close", or Garden's client reports that instead
                await conn.SendErrorAsync(p, hijackRoute: head.Target.Contains("/processes", StringComparison.Ordinal));
                await conn.LingerAsync();
                return;
            }
            if (head.ExpectContinue && head.HasBody) await conn.WriteAsync(HttpWire.Continue);

            // Garden's grace time counts only while nothing touches the container (stdout/stderr ride on their Run's hold)
            using var hold = match.Handle is { } h && match.Route.Name is not (RouteName.Stdout or RouteName.Stderr) ? _backend.PauseGraceTime(h) : null;
            switch (match.Route.Name)
            {
                case RouteName.Run:
                    await _processes.ServeRunAsync(conn, match, head);
                    break;
                case RouteName.Attach:
                    await _processes.ServeAttachAsync(conn, match);
                    break;
                case RouteName.Stdout or RouteName.Stderr:
                    await _processes.ServeOutputAsync(conn, match, stderr: match.Route.Name == RouteName.Stderr);
                    break;
                default:
                    await _handlers.ServeAsync(conn, match, head);
                    break;
            }
            await conn.LingerAsync();
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // the client went away, or the server is stopping
        }
    }

    /// <summary>Stops listening and ends every connection (a Run/Attach client then sees its stream end without an exit
    /// status; the processes keep running). The Unix socket file is removed.</summary>
    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested) return;
        await _stopping.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null) await _acceptLoop;
        await Task.WhenAll(_connections.Values).WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        if (_unixPath is not null)
        {
            try
            {
                File.Delete(_unixPath);
            }
            catch (IOException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
    }

    /// <summary>An address as the configuration gives it: <c>HOST:PORT</c> (an IPv4 or IPv6 address, <c>[::1]:7777</c>,
    /// or <c>localhost</c>), or a Unix socket path (absolute, or <c>unix:PATH</c>).</summary>
    public static EndPoint ParseAddress(string address)
    {
        if (string.IsNullOrWhiteSpace(address)) throw new ArgumentException("the Garden HTTP address is empty (HOST:PORT or a unix socket path)");
        var a = address.Trim();
        if (a.StartsWith("unix:", StringComparison.Ordinal)) a = a[5..];
        if (a.StartsWith('/'))
        {
            if (a.Length > 107) throw new ArgumentException($"the unix socket path {a} is longer than the 107 bytes a socket address holds");
            return new UnixDomainSocketEndPoint(a);
        }
        var colon = a.LastIndexOf(':');
        if (colon > 0 && a[..colon] == "localhost" && int.TryParse(a[(colon + 1)..], out var lp) && lp is >= 0 and <= 65535)
            return new IPEndPoint(IPAddress.Loopback, lp);
        if (IPEndPoint.TryParse(a, out var ip) && colon > 0 && a[(colon + 1)..].All(char.IsAsciiDigit) && (a.Contains('.') || a.StartsWith('[')))
            return ip;
        throw new ArgumentException($"the Garden HTTP address \"{address}\" is neither HOST:PORT (an IP address or localhost, and a port) nor an absolute unix socket path");
    }

    /// <summary>True for a loopback address or a Unix socket: reachable from this host only.</summary>
    public static bool IsLocalOnly(EndPoint endpoint) => endpoint switch
    {
        UnixDomainSocketEndPoint => true,
        IPEndPoint ip => IPAddress.IsLoopback(ip.Address),
        _ => false,
    };
}
