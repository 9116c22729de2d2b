using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;

namespace Garden.Agent;

/// <summary>One daemon connection: 4-byte big-endian length + protobuf frames; writes are serialized.</summary>
internal sealed class FrameConnection(Socket socket) : IDisposable
{
    public const int MaxFrame = 16 * 1024 * 1024;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private byte[] _buf = new byte[4096];
    private int _pos, _len;

    public Socket Socket => socket;

    /// <summary>Reads one frame; null on a clean EOF between frames. Throws InvalidDataException on a bad frame.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadFrameAsync(CancellationToken ct)
    {
        if (!await FillAsync(4, ct))
        {
            if (_len - _pos == 0) return null;
            throw new InvalidDataException("connection closed inside a frame header");
        }
        int size = BinaryPrimitives.ReadInt32BigEndian(_buf.AsSpan(_pos, 4));
        if (size < 0 || size > MaxFrame) throw new InvalidDataException($"frame size {size} out of range");
        if (!await FillAsync(4 + size, ct)) throw new InvalidDataException("connection closed inside a frame");
        var frame = new ReadOnlyMemory<byte>(_buf, _pos + 4, size);
        _pos += 4 + size;
        return frame;
    }

    private async ValueTask<bool> FillAsync(int need, CancellationToken ct)
    {
        if (_len - _pos >= need) return true;
        if (_pos > 0)
        {
            Buffer.BlockCopy(_buf, _pos, _buf, 0, _len - _pos);
            _len -= _pos;
            _pos = 0;
        }
        if (_buf.Length < need) Array.Resize(ref _buf, Math.Max(need, _buf.Length * 2));
        while (_len < need)
        {
            int n = await socket.ReceiveAsync(_buf.AsMemory(_len), SocketFlags.None, ct);
            if (n == 0) return false;
            _len += n;
        }
        return true;
    }

    public ValueTask WriteAsync(IMessage message, CancellationToken ct) => WriteManyAsync([message], ct);

    /// <summary>Writes several frames with one send.</summary>
    public async ValueTask WriteManyAsync(IReadOnlyList<IMessage> messages, CancellationToken ct)
    {
        int total = 0;
        Span<int> sizes = messages.Count <= 64 ? stackalloc int[messages.Count] : new int[messages.Count];
        for (int i = 0; i < messages.Count; i++)
        {
            sizes[i] = messages[i].CalculateSize();
            total += 4 + sizes[i];
        }
        var buf = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            int at = 0;
            for (int i = 0; i < messages.Count; i++)
            {
                BinaryPrimitives.WriteInt32BigEndian(buf.AsSpan(at, 4), sizes[i]);
                messages[i].WriteTo(buf.AsSpan(at + 4, sizes[i]));
                at += 4 + sizes[i];
            }
            await _writeLock.WaitAsync(ct);
            try
            {
                int sent = 0;
                while (sent < total) sent += await socket.SendAsync(buf.AsMemory(sent, total - sent), SocketFlags.None, ct);
            }
            finally
            {
                _writeLock.Release();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
        }
    }

    public void Dispose()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch
        {
        }
        socket.Dispose();
    }
}
