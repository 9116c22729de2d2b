using System.Net.Sockets;
using System.Text.Json;

namespace Garden.Host.GardenHttp;

/// <summary>One accepted connection: its buffered reader, its writes, and how it ends. It carries one request
/// (Garden's client never reuses a connection).</summary>
public sealed class HttpConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly GardenHttpOptions _options;
    private readonly CancellationTokenSource _aborted;
    private bool _lingered;

    public HttpConnection(Socket socket, GardenHttpOptions options, CancellationToken stopping)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _options = options;
        _aborted = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        Reader = new ConnectionReader(_stream);
        Peer = socket.RemoteEndPoint?.ToString() is { Length: > 0 } p ? p : "unix";
    }

    public ConnectionReader Reader { get; }

    /// <summary>The server is stopping or the connection was disposed.</summary>
    public CancellationToken Aborted => _aborted.Token;

    public string Peer { get; }

    /// <summary>The request head, within <see cref="GardenHttpOptions.RequestHeadTimeout"/> (else 408) and
    /// <see cref="GardenHttpOptions.MaxRequestHeadBytes"/> (else 431); null when the client closed without sending one.</summary>
    public async Task<HttpRequestHead?> ReadHeadAsync()
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Aborted);
        timeout.CancelAfter(_options.RequestHeadTimeout);
        try
        {
            while (true)
            {
                var end = HttpRequestHead.EndOfHead(Reader.BufferedSpan);
                if (end >= 0)
                {
                    if (end > _options.MaxRequestHeadBytes) throw TooLarge();
                    var head = HttpRequestHead.Parse(Reader.BufferedSpan[..end]);
                    Reader.Consume(end);
                    return head;
                }
                if (Reader.Buffered >= _options.MaxRequestHeadBytes) throw TooLarge();
                bool more;
                try
                {
                    more = await Reader.FillAsync(_options.MaxRequestHeadBytes, timeout.Token);
                }
                catch (InvalidDataException)
                {
                    throw TooLarge();
                }
                if (!more)
                {
                    if (Reader.Buffered == 0) return null;
                    throw new HttpProblem(400, "the connection closed in the middle of the request head");
                }
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !Aborted.IsCancellationRequested)
        {
            throw new HttpProblem(408, $"the request head did not arrive within {_options.RequestHeadTimeout.TotalSeconds:0.#} s");
        }
    }

    private HttpProblem TooLarge() => new(431, $"the request head is larger than the {_options.MaxRequestHeadBytes} bytes allowed");

    public RequestBody Body(HttpRequestHead head, TimeSpan idleTimeout) => new(Reader, head, idleTimeout, Aborted);

    public ValueTask WriteAsync(ReadOnlyMemory<byte> bytes) => _stream.WriteAsync(bytes, Aborted);

    /// <summary>An error as Garden's JSON. <paramref name="hijackRoute"/>: on Run/Attach/stdout/stderr the answer must
    /// not say <c>Connection: close</c> (<see cref="HttpWire.HijackResponse"/>).</summary>
    public async Task SendErrorAsync(Exception e, bool hijackRoute, string? processId = null)
    {
        var (status, error) = GardenErrors.From(e, processId);
        var json = Json(error, GardenJsonContext.Wire.GardenError);
        await WriteAsync(hijackRoute ? HttpWire.HijackResponse(status, json) : HttpWire.Response(status, HttpWire.Json, json));
    }

    /// <summary>Go's <c>json.NewEncoder(w).Encode(v)</c>: compact JSON and a newline.</summary>
    public static byte[] Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(value, type);
        var line = new byte[json.Length + 1];
        json.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        return line;
    }

    /// <summary>A lingering end done by whoever read the connection last (a Run/Attach stream reads the client's
    /// payloads to the end itself): <see cref="LingerAsync"/> then does nothing more.</summary>
    public void Lingered() => _lingered = true;

    /// <summary>Stops sending (the client sees the end of the answer) and keeps reading.</summary>
    public void ShutdownSend()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // already gone
        }
    }

    /// <summary>The end of a connection whose answer is written: stop sending, then read and discard what the client
    /// still sends until it closes (or <see cref="GardenHttpOptions.LingerTimeout"/>, or
    /// <see cref="GardenHttpOptions.MaxLingerBytes"/>). Closing with unread bytes would make the kernel send a reset,
    /// which can destroy the answer before the client read it.</summary>
    public async Task LingerAsync()
    {
        if (_lingered) return;
        _lingered = true;
        ShutdownSend();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Aborted);
        timeout.CancelAfter(_options.LingerTimeout);
        var scratch = new byte[16 * 1024];
        long discarded = 0;
        try
        {
            int n;
            while (discarded < _options.MaxLingerBytes && (n = await Reader.ReadAsync(scratch, timeout.Token)) > 0) discarded += n;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // the client did not close in time, or reset: either way the connection ends now
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _aborted.CancelAsync();
        await _stream.DisposeAsync();
        _aborted.Dispose();
    }
}
