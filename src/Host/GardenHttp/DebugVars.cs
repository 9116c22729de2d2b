using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Akka.Configuration;

namespace Garden.Host.GardenHttp;

/// <summary>gardend's debug endpoint (<c>garden.garden-http.debug-address</c>): what Garden's gdn serves with Go's expvar at
/// <c>--debug-bind-ip/--debug-bind-port</c>, <c>GET /debug/vars</c> → <c>{"cmdline": [...], "memstats": {...}}</c>, so
/// that tools (and GATS's "Debug" spec) reading gdn's memory numbers read gardend's. The numbers are the .NET runtime's own,
/// named as Go's <c>runtime.MemStats</c> names the nearest thing (see <see cref="MemStats"/>). Off unless asked; read-only,
/// but it tells whoever reaches it about the daemon, so, as the Garden HTTP door, an address other than loopback is refused
/// unless <c>garden.garden-http.allow-non-loopback = on</c>. HOST:PORT only (gdn's is TCP).</summary>
public sealed record GardenDebugDoor(IPEndPoint EndPoint, string Address)
{
    public const string Setting = "garden.garden-http.debug-address";

    /// <summary>null when off (the default). Throws <see cref="StartupFailure"/> (exit 2) naming the setting for an address
    /// that is not HOST:PORT, or not loopback without allow-non-loopback.</summary>
    public static GardenDebugDoor? FromConfig(Config config)
    {
        if (LoopbackTcp.FromConfig(config, Setting, "garden.garden-http.allow-non-loopback", "the debug endpoint",
                "the debug endpoint has no authentication") is not { } ip) return null;
        return new GardenDebugDoor(ip, config.GetString(Setting, "").Trim());
    }
}

/// <summary>Go's <c>runtime.MemStats</c> fields, from this process's garbage collector. Go's names, the nearest .NET
/// measure: Alloc = HeapAlloc = bytes of live objects on the GC heap (<see cref="GC.GetTotalMemory(bool)"/>); TotalAlloc =
/// bytes ever allocated (<see cref="GC.GetTotalAllocatedBytes"/>); Sys = the process's resident memory; HeapSys = the GC's
/// committed memory; NumGC = collections so far (generation 2 counts those of 0 and 1 it includes, so gen-0's count is all
/// of them); PauseTotalNs = time the GC paused the process.</summary>
public sealed record MemStats(ulong Alloc, ulong TotalAlloc, ulong Sys, ulong HeapAlloc, ulong HeapSys, ulong HeapInuse,
    ulong NumGC, ulong PauseTotalNs)
{
    public static MemStats Now()
    {
        var info = GC.GetGCMemoryInfo();
        var live = (ulong)Math.Max(0, GC.GetTotalMemory(false));
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return new MemStats(
            Alloc: live,
            TotalAlloc: (ulong)Math.Max(0, GC.GetTotalAllocatedBytes(false)),
            Sys: (ulong)Math.Max(0, self.WorkingSet64),
            HeapAlloc: live,
            HeapSys: (ulong)Math.Max(0, info.TotalCommittedBytes),
            HeapInuse: (ulong)Math.Max(0, info.HeapSizeBytes),
            NumGC: (ulong)GC.CollectionCount(0),
            PauseTotalNs: (ulong)GC.GetTotalPauseDuration().Ticks * 100);
    }
}

/// <summary>The debug endpoint's server: one GET route, answered and closed. Its own few lines of HTTP/1.1 rather than the
/// Garden HTTP server's: nothing here streams, is hijacked or takes a body; a request head is bounded (8 KiB, 5 s).</summary>
public sealed class DebugVarsServer : IAsyncDisposable
{
    private const int MaxHead = 8 * 1024;
    private static readonly TimeSpan HeadTimeout = TimeSpan.FromSeconds(5);
    private readonly CancellationTokenSource _stop = new();
    private readonly ILogger _log;
    private Socket? _listener;
    private Task _accepting = Task.CompletedTask;
    private int _open;

    public DebugVarsServer(ILogger log) => _log = log;

    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    public void Start(IPEndPoint endpoint)
    {
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endpoint);
            listener.Listen(16);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        _accepting = AcceptLoop(listener);
    }

    /// <summary>The body of <c>GET /debug/vars</c>: expvar's two standard variables.</summary>
    public static string Vars()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("cmdline");
            foreach (var a in Environment.GetCommandLineArgs()) json.WriteStringValue(a);
            json.WriteEndArray();
            var m = MemStats.Now();
            json.WriteStartObject("memstats");
            json.WriteNumber("Alloc", m.Alloc);
            json.WriteNumber("TotalAlloc", m.TotalAlloc);
            json.WriteNumber("Sys", m.Sys);
            json.WriteNumber("HeapAlloc", m.HeapAlloc);
            json.WriteNumber("HeapSys", m.HeapSys);
            json.WriteNumber("HeapInuse", m.HeapInuse);
            json.WriteNumber("NumGC", m.NumGC);
            json.WriteNumber("PauseTotalNs", m.PauseTotalNs);
            json.WriteEndObject();
            WriteRuntime(json);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>A third variable, <c>runtime</c>: the memory settings the .NET runtime runs gardend with, as it reports
    /// them (the GC's settings in force, <see cref="GC.GetConfigurationVariables"/>; the runtimeconfig properties it was
    /// given), and its thread count: what bench/FINDINGS-memory.md measured, checkable on a running gardend.</summary>
    private static void WriteRuntime(Utf8JsonWriter json)
    {
        json.WriteStartObject("runtime");
        json.WriteStartObject("gc");
        foreach (var (key, value) in GC.GetConfigurationVariables().OrderBy(kv => kv.Key, StringComparer.Ordinal))
            switch (value)
            {
                case bool b: json.WriteBoolean(key, b); break;
                case long or int or ulong or uint: json.WriteNumber(key, Convert.ToDecimal(value)); break;
                default: json.WriteString(key, value.ToString()); break;
            }
        json.WriteEndObject();
        json.WriteStartObject("properties");
        foreach (var name in RuntimeProperties)
            if (AppContext.GetData(name) is { } value) json.WriteString(name, value.ToString());
        json.WriteEndObject();
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        json.WriteNumber("threads", self.Threads.Count);
        json.WriteEndObject();
    }

    /// <summary>The runtimeconfig.json properties of gardend's memory and JIT (src/Host/Garden.Host.csproj).</summary>
    public static readonly string[] RuntimeProperties =
    [
        "System.GC.Server", "System.GC.Concurrent", "System.GC.ConserveMemory", "System.GC.RetainVM", "System.GC.LOHThreshold",
        "System.Runtime.TieredCompilation", "System.Runtime.TieredPGO", "System.Threading.ThreadPool.UnfairSemaphoreSpinLimit",
    ];

    private async Task AcceptLoop(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket conn;
            try
            {
                conn = await listener.AcceptAsync(_stop.Token);
            }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException e)
            {
                _log.LogWarning("debug: accept failed: {Error}", e.Message);
                await Task.Delay(100);
                continue;
            }
            if (Interlocked.Increment(ref _open) > 64)
            {
                Interlocked.Decrement(ref _open);
                conn.Dispose();
                continue;
            }
            _ = Serve(conn);
        }
    }

    private async Task Serve(Socket conn)
    {
        try
        {
            using var _ = conn;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(HeadTimeout);
            var head = new byte[MaxHead];
            var n = 0;
            var end = -1;
            while (end < 0)
            {
                if (n == head.Length) { await Answer(conn, 431, "text/plain", "request head too large\n"); return; }
                var got = await conn.ReceiveAsync(head.AsMemory(n), SocketFlags.None, timeout.Token);
                if (got == 0) return;
                n += got;
                end = head.AsSpan(0, n).IndexOf("\r\n\r\n"u8);
            }
            var line = Encoding.ASCII.GetString(head, 0, head.AsSpan(0, n).IndexOf("\r\n"u8)).Split(' ');
            if (line.Length != 3 || !line[2].StartsWith("HTTP/1.", StringComparison.Ordinal))
                await Answer(conn, 400, "text/plain", "bad request line\n");
            else if (line[1].Split('?')[0] != "/debug/vars")
                await Answer(conn, 404, "text/plain", "404 page not found (only /debug/vars is served here)\n");
            else if (line[0] is not ("GET" or "HEAD"))
                await Answer(conn, 405, "text/plain", "only GET /debug/vars\n");
            else
                await Answer(conn, 200, "application/json; charset=utf-8", Vars(), body: line[0] == "GET");
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }

    private static async Task Answer(Socket conn, int status, string type, string text, bool body = true)
    {
        var content = Encoding.UTF8.GetBytes(text);
        var reason = status switch { 200 => "OK", 400 => "Bad Request", 404 => "Not Found", 405 => "Method Not Allowed", _ => "Request Header Fields Too Large" };
        var head = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 {status} {reason}\r\nContent-Type: {type}\r\nContent-Length: {content.Length}\r\nConnection: close\r\n\r\n");
        await conn.SendAsync(head, SocketFlags.None);
        if (body) await conn.SendAsync(content, SocketFlags.None);
        conn.Shutdown(SocketShutdown.Send);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Dispose();
        try { await _accepting; } catch { }
        _stop.Dispose();
    }
}

/// <summary>The debug endpoint's lifetime in the generic host.</summary>
public sealed class DebugVarsEndpoint(GardenDebugDoor door, ILoggerFactory logging) : IHostedService
{
    private DebugVarsServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var server = new DebugVarsServer(logging.CreateLogger("GardenDebug"));
        try
        {
            server.Start(door.EndPoint);
        }
        catch (SocketException e)
        {
            throw new StartupFailure(1, $"{GardenDebugDoor.Setting} {door.Address}: cannot listen: {e.Message}");
        }
        _server = server;
        Console.WriteLine($"gardend: debug endpoint at http://{server.LocalEndPoint}/debug/vars");
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null) await _server.DisposeAsync();
    }
}
