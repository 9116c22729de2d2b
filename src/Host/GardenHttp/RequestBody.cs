using System.Globalization;
using System.Text;
using Garden.Linux.IO;

namespace Garden.Host.GardenHttp;

/// <summary>A request's body, by Content-Length or chunked (Go's client chunks StreamIn's tar), read from the shared
/// <see cref="ConnectionReader"/> so that what follows it stays there. Each read waits at most
/// <paramref name="idleTimeout"/> for a byte (a stalled upload ends as an <see cref="HttpProblem"/> 408); the whole
/// read is also cancelled by <paramref name="aborted"/>.</summary>
public sealed class RequestBody(ConnectionReader reader, HttpRequestHead head, TimeSpan idleTimeout, CancellationToken aborted) : ReadOnlyStream
{
    private const int MaxChunkLine = 4096;
    private long _remaining = head.Chunked ? 0 : head.ContentLength ?? 0;   // of the body, or of the current chunk
    private bool _done = !head.Chunked && (head.ContentLength ?? 0) == 0;

    /// <summary>True once the whole body, to its last byte (and a chunked body's trailer), has been read.</summary>
    public bool Completed => _done;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_done || buffer.Length == 0) return 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(aborted, cancellationToken);
        timeout.CancelAfter(idleTimeout);
        try
        {
            if (head.Chunked && _remaining == 0)
            {
                if (!await NextChunkAsync(timeout.Token)) return 0;
            }
            var n = await reader.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _remaining)], timeout.Token);
            if (n == 0) throw new HttpProblem(400, "the request body ended early: the connection closed before its last byte");
            _remaining -= n;
            if (_remaining == 0)
            {
                if (head.Chunked) await ExpectLineEndAsync(timeout.Token);
                else _done = true;
            }
            return n;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !aborted.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new HttpProblem(408, $"the request body stalled: no byte for {idleTimeout.TotalSeconds:0.#} s");
        }
    }

    /// <summary>Reads the whole body, at most <paramref name="maxBytes"/> (beyond: 413), within
    /// <paramref name="timeout"/> (beyond: 408).</summary>
    public async Task<byte[]> ReadAllAsync(int maxBytes, TimeSpan timeout)
    {
        if (head.ContentLength > maxBytes)
            throw new HttpProblem(413, $"the request body of {head.ContentLength} bytes is larger than the {maxBytes} bytes allowed");
        using var total = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        total.CancelAfter(timeout);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = await ReadAsync(chunk, total.Token)) > 0)
            {
                if (buffer.Length + n > maxBytes) throw new HttpProblem(413, $"the request body is larger than the {maxBytes} bytes allowed");
                buffer.Write(chunk, 0, n);
            }
        }
        catch (OperationCanceledException) when (total.IsCancellationRequested && !aborted.IsCancellationRequested)
        {
            throw new HttpProblem(408, $"the request body did not arrive within {timeout.TotalSeconds:0.#} s");
        }
        return buffer.ToArray();
    }

    /// <summary>Reads a chunk-size line; false (and done, after the trailer) at the last chunk.</summary>
    private async Task<bool> NextChunkAsync(CancellationToken ct)
    {
        var line = await ReadLineAsync(ct);
        var text = Encoding.Latin1.GetString(line);
        var semicolon = text.IndexOf(';');   // chunk extensions are ignored
        var hex = (semicolon < 0 ? text : text[..semicolon]).Trim(' ', '\t');
        if (hex.Length is 0 or > 15 || !long.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var size))
            throw new HttpProblem(400, $"malformed chunk size \"{HttpRequestHead.Printable(text)}\"");
        if (size > 0)
        {
            _remaining = size;
            return true;
        }
        // the last chunk: trailer fields (ignored) up to an empty line
        for (var fields = 0; (await ReadLineAsync(ct)).Length > 0; fields++)
            if (fields > 100) throw new HttpProblem(400, "too many trailer fields");
        _done = true;
        return false;
    }

    private async Task ExpectLineEndAsync(CancellationToken ct)
    {
        if ((await ReadLineAsync(ct)).Length != 0) throw new HttpProblem(400, "malformed chunked body: a chunk is longer than its size");
    }

    private async Task<byte[]> ReadLineAsync(CancellationToken ct)
    {
        try
        {
            return await reader.ReadLineAsync(MaxChunkLine, ct)
                   ?? throw new HttpProblem(400, "the request body ended early: the connection closed inside the chunked body");
        }
        catch (InvalidDataException)
        {
            throw new HttpProblem(400, "malformed chunked body: a line of more than 4096 bytes");
        }
    }
}
