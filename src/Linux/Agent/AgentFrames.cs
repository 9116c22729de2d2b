using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;

namespace Garden.Linux.Agent;

/// <summary>
/// The agent protocol's framing over one socket: a 4-byte big-endian length, then the protobuf bytes.
/// Reads are buffered (64 KiB receives); writes of one frame are one send, serialized by a lock.
/// </summary>
internal sealed class AgentFrames : IDisposable
{
    public const int MaxFrame = 16 * 1024 * 1024;
    private const int ReceiveSize = 64 * 1024;

    private readonly Socket _socket;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private byte[] _buf = new byte[ReceiveSize + 4096];
    private int _pos, _len;

    public AgentFrames(Socket socket) => _socket = socket;

    /// <summary>Reads one frame (valid until the next read); null on EOF between frames.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadFrameAsync(CancellationToken ct)
    {
        if (!await FillAsync(4, ct))
        {
            if (_len == _pos) return null;
            throw new InvalidDataException("agent closed the connection inside a frame header");
        }
        int size = BinaryPrimitives.ReadInt32BigEndian(_buf.AsSpan(_pos, 4));
        if (size < 0 || size > MaxFrame) throw new InvalidDataException($"agent frame of {size} bytes exceeds {MaxFrame}");
        if (!await FillAsync(4 + size, ct)) throw new InvalidDataException("agent closed the connection inside a frame");
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
        if (_buf.Length < need + ReceiveSize / 4) Array.Resize(ref _buf, need + ReceiveSize);
        while (_len < need)
        {
            int n = await _socket.ReceiveAsync(_buf.AsMemory(_len), SocketFlags.None, ct);
            if (n == 0) return false;
            _len += n;
        }
        return true;
    }

    public async ValueTask WriteAsync(IMessage message, CancellationToken ct)
    {
        int size = message.CalculateSize();
        if (size > MaxFrame) throw new ArgumentException($"frame of {size} bytes exceeds {MaxFrame}");
        var buf = ArrayPool<byte>.Shared.Rent(size + 4);
        try
        {
            BinaryPrimitives.WriteInt32BigEndian(buf, size);
            message.WriteTo(buf.AsSpan(4, size));
            await _writeLock.WaitAsync(ct);
            try
            {
                int sent = 0;
                while (sent < size + 4) sent += await _socket.SendAsync(buf.AsMemory(sent, size + 4 - sent), SocketFlags.None, ct);
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
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        _socket.Dispose();
        _writeLock.Dispose();
    }
}
