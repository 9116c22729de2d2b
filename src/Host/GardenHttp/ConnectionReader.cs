namespace Garden.Host.GardenHttp;

/// <summary>A buffered reader over one connection, shared by everything that reads it in turn: the request head, the
/// body, and — on a Run or Attach connection — the newline-delimited JSON the client sends after its request, which
/// may already sit in the buffer behind the body. Not thread-safe: one reader at a time.</summary>
public sealed class ConnectionReader(Stream stream)
{
    private byte[] _buffer = new byte[8 * 1024];
    private int _start, _end;

    public int Buffered => _end - _start;

    public ReadOnlySpan<byte> BufferedSpan => _buffer.AsSpan(_start, _end - _start);

    public void Consume(int count)
    {
        if ((uint)count > (uint)Buffered) throw new ArgumentOutOfRangeException(nameof(count));
        _start += count;
        if (_start == _end) _start = _end = 0;
    }

    /// <summary>Reads more bytes behind those buffered; false at the end of the stream. The buffer grows up to
    /// <paramref name="maxBuffered"/>; full at that size is an <see cref="InvalidDataException"/>.</summary>
    public async ValueTask<bool> FillAsync(int maxBuffered, CancellationToken ct)
    {
        if (_end == _buffer.Length)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, Buffered);
                (_end, _start) = (Buffered, 0);
            }
            else if (_buffer.Length < maxBuffered)
            {
                Array.Resize(ref _buffer, (int)Math.Min(maxBuffered, _buffer.Length * 2L));
            }
            else
            {
                throw new InvalidDataException($"more than {maxBuffered} bytes without the expected delimiter");
            }
        }
        var n = await stream.ReadAsync(_buffer.AsMemory(_end), ct);
        if (n == 0) return false;
        _end += n;
        return true;
    }

    /// <summary>Buffered bytes first, then the stream; 0 at its end.</summary>
    public async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken ct)
    {
        if (destination.Length == 0) return 0;
        if (Buffered == 0) return await stream.ReadAsync(destination, ct);
        var n = Math.Min(Buffered, destination.Length);
        BufferedSpan[..n].CopyTo(destination.Span);
        Consume(n);
        return n;
    }

    /// <summary>The next line without its "\n" (and a "\r" before it); null at the end of the stream (a last line
    /// without "\n" is dropped: it was cut off). Longer than <paramref name="maxLength"/> is an
    /// <see cref="InvalidDataException"/>.</summary>
    public async ValueTask<byte[]?> ReadLineAsync(int maxLength, CancellationToken ct)
    {
        var searched = 0;
        while (true)
        {
            var i = BufferedSpan[searched..].IndexOf((byte)'\n');
            if (i >= 0)
            {
                var length = searched + i;
                if (length > maxLength) throw new InvalidDataException($"a line of more than {maxLength} bytes");
                var line = BufferedSpan[..(length > 0 && BufferedSpan[length - 1] == '\r' ? length - 1 : length)].ToArray();
                Consume(length + 1);
                return line;
            }
            searched = Buffered;
            if (searched > maxLength) throw new InvalidDataException($"a line of more than {maxLength} bytes");
            if (!await FillAsync(maxLength + 2, ct)) return null;
        }
    }
}
