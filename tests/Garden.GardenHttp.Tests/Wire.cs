using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Garden.Host.GardenHttp;

namespace Garden.GardenHttp.Tests;

/// <summary>A Garden HTTP server on a free loopback port (or a Unix socket under /tmp/garden-test-*) over a
/// <see cref="FakeBackend"/>.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly string? _dir;

    private TestServer(EndPoint endpoint, GardenHttpOptions? options, FakeBackend? backend, string? dir)
    {
        _dir = dir;
        Backend = backend ?? new FakeBackend();
        Options = options ?? new GardenHttpOptions();
        Server = new GardenHttpServer(Backend, Options);
        Server.Start(endpoint);
        EndPoint = Server.LocalEndPoint!;
    }

    public FakeBackend Backend { get; }
    public GardenHttpOptions Options { get; }
    public GardenHttpServer Server { get; }
    public EndPoint EndPoint { get; }

    public static TestServer Tcp(GardenHttpOptions? options = null, FakeBackend? backend = null) =>
        new(new IPEndPoint(IPAddress.Loopback, 0), options, backend, null);

    public static TestServer Unix(GardenHttpOptions? options = null, FakeBackend? backend = null)
    {
        var dir = Directory.CreateTempSubdirectory("garden-test-http-").FullName;
        return new(new UnixDomainSocketEndPoint(Path.Combine(dir, "garden.sock")), options, backend, dir);
    }

    public async Task<RawConnection> ConnectAsync()
    {
        var s = EndPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(EndPoint);
        return new RawConnection(s);
    }

    /// <summary>One request on a connection of its own, the answer read to the connection's end.</summary>
    public async Task<RawResponse> SendAsync(string request) => await SendAsync(Encoding.UTF8.GetBytes(request));

    public async Task<RawResponse> SendAsync(byte[] request)
    {
        await using var c = await ConnectAsync();
        await c.SendAsync(request);
        return RawResponse.Parse(await c.ReadToEndAsync());
    }

    /// <summary>An HttpClient whose every connection goes to this server (TCP or Unix), as Garden's client: one request
    /// per connection.</summary>
    public HttpClient HttpClient() => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = EndPoint is UnixDomainSocketEndPoint
                ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
                : new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await s.ConnectAsync(EndPoint, ct);
            return new NetworkStream(s, ownsSocket: true);
        },
        PooledConnectionLifetime = TimeSpan.Zero,
    })
    {
        BaseAddress = new Uri("http://api/"),
        Timeout = TimeSpan.FromSeconds(30),
    };

    /// <summary>Waits until <paramref name="condition"/> holds (a few seconds at most).</summary>
    public static async Task Eventually(Func<bool> condition, string what, int ms = 10_000)
    {
        var until = DateTime.UtcNow.AddMilliseconds(ms);
        while (!condition())
        {
            if (DateTime.UtcNow > until) Assert.Fail($"timed out waiting for: {what}");
            await Task.Delay(10);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        if (_dir is not null) Directory.Delete(_dir, recursive: true);
    }
}

/// <summary>A raw client connection: exactly the bytes sent, exactly the bytes received. Every read gives up after
/// 10 s (a test must fail, not hang).</summary>
public sealed class RawConnection(Socket socket) : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly List<byte> _pending = [];

    public Socket Socket => socket;

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes) => await socket.SendAsync(bytes, SocketFlags.None);

    /// <summary>More bytes into the pending list; false at the end of the stream (or a reset).</summary>
    private async Task<bool> ReceiveAsync(TimeSpan? timeout = null)
    {
        var buffer = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        int n;
        try
        {
            n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"nothing received for {(timeout ?? Timeout).TotalSeconds} s; pending: {Encoding.UTF8.GetString([.. _pending])}");
        }
        if (n == 0) return false;
        _pending.AddRange(buffer.AsSpan(0, n).ToArray());
        return true;
    }

    /// <summary>Up to and including the empty line that ends a response head.</summary>
    public async Task<string> ReadHeadAsync()
    {
        while (true)
        {
            var text = Encoding.Latin1.GetString([.. _pending]);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0) return Take(end + 4);
            if (!await ReceiveAsync()) throw new EndOfStreamException($"closed before a head: {text}");
        }
    }

    /// <summary>One line, with its "\n"; null at the end of the stream.</summary>
    public async Task<string?> ReadLineAsync()
    {
        while (true)
        {
            var i = _pending.IndexOf((byte)'\n');
            if (i >= 0) return Take(i + 1);
            if (!await ReceiveAsync()) return null;
        }
    }

    /// <summary>Exactly <paramref name="count"/> bytes.</summary>
    public async Task<string> ReadAsync(int count)
    {
        while (_pending.Count < count)
            if (!await ReceiveAsync()) throw new EndOfStreamException($"closed after {_pending.Count} of {count} bytes");
        return Take(count);
    }

    public async Task<string> ReadToEndAsync()
    {
        while (await ReceiveAsync())
        {
        }
        return Take(_pending.Count);
    }

    /// <summary>True when the server closes within <paramref name="ms"/>, having sent nothing more.</summary>
    public async Task<bool> ClosesAsync(int ms = 10_000)
    {
        try
        {
            return !await ReceiveAsync(TimeSpan.FromMilliseconds(ms)) && _pending.Count == 0;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private string Take(int count)
    {
        var s = Encoding.UTF8.GetString(_pending.GetRange(0, count).ToArray());
        _pending.RemoveRange(0, count);
        return s;
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>A response as received: status, headers, and the body as it was on the wire.</summary>
public sealed record RawResponse(string Raw, int Status, string Head, Dictionary<string, string> Headers, string Body)
{
    public static RawResponse Parse(string raw)
    {
        var end = raw.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(end > 0, $"no response head in: {raw}");
        var head = raw[..end];
        var lines = head.Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var l in lines.Skip(1)) headers[l[..l.IndexOf(':')]] = l[(l.IndexOf(':') + 1)..].Trim();
        return new RawResponse(raw, status, head, headers, raw[(end + 4)..]);
    }

    /// <summary>The head with its Date line out (the only line that changes from run to run).</summary>
    public string HeadWithoutDate => WithoutDate(Head);

    public static string WithoutDate(string head) => string.Join("\r\n", head.Split("\r\n").Where(l => !l.StartsWith("Date: ", StringComparison.Ordinal)));
}

/// <summary>The golden files made from Garden's Go client (Golden/generate.sh).</summary>
public static class Golden
{
    private static readonly Lazy<Dictionary<string, string>> JsonFile = new(() => Load("garden-json.golden", unquote: false));
    private static readonly Lazy<Dictionary<string, string>> RequestFile = new(() => Load("go-client-requests.golden", unquote: true));

    /// <summary>What Go's encoding/json writes for a sample (without the encoder's trailing newline).</summary>
    public static string Json(string name) => JsonFile.Value.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no golden JSON {name}");

    /// <summary>The bytes Garden's Go client sent for a request (the first line of the request is the key).</summary>
    public static string Request(string firstLine) => RequestFile.Value.TryGetValue(firstLine, out var v) ? v : throw new KeyNotFoundException($"no golden request {firstLine}");

    private static Dictionary<string, string> Load(string file, bool unquote)
    {
        var d = new Dictionary<string, string>();
        foreach (var line in File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "Golden", file), Encoding.UTF8))
        {
            var tab = line.IndexOf('\t');
            if (tab < 0) continue;
            d[line[..tab]] = unquote ? GoUnquote(line[(tab + 1)..]) : line[(tab + 1)..];
        }
        return d;
    }

    /// <summary>Go's %q back to the string (\r \n \t \" \\ \xNN \uNNNN).</summary>
    private static string GoUnquote(string q)
    {
        var bytes = new List<byte>();
        for (var i = 1; i < q.Length - 1; i++)
        {
            if (q[i] != '\\')
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(q[i].ToString()));
                continue;
            }
            var c = q[++i];
            switch (c)
            {
                case 'r': bytes.Add((byte)'\r'); break;
                case 'n': bytes.Add((byte)'\n'); break;
                case 't': bytes.Add((byte)'\t'); break;
                case 'x':
                    bytes.Add(Convert.ToByte(q.Substring(i + 1, 2), 16));
                    i += 2;
                    break;
                case 'u':
                    bytes.AddRange(Encoding.UTF8.GetBytes(((char)Convert.ToInt32(q.Substring(i + 1, 4), 16)).ToString()));
                    i += 4;
                    break;
                default: bytes.Add((byte)c); break;
            }
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }
}
