using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;

namespace Garden.Protocol.Agent;

/// <summary>The agent protocol's framing over one socket, used by both ends (gardend's AgentClient, and garden-agent,
/// which compiles this file in): a 4-byte big-endian length, then the protobuf bytes. Reads are buffered
/// (64 KiB receives once a frame was larger than 4 KiB); each write is one send, serialized by a lock.</summary>
public sealed class FrameSocket(Socket socket) : IDisposable
{
    public const int MaxFrame = 16 * 1024 * 1024;
    private const int ReceiveSize = 64 * 1024;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    // small until a frame needs more: most connections carry one small request (and a log follower's none, for as long
    // as the container lives, on both ends); the first large frame grows it to take ReceiveSize per receive
    private byte[] _buf = new byte[4096];
    private int _pos, _len;

    public Socket Socket => socket;

    /// <summary>Reads one frame (valid until the next read); null on EOF between frames; InvalidDataException on a bad frame.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadFrameAsync(CancellationToken ct)
    {
        if (!await FillAsync(4, ct))
        {
            if (_len == _pos) return null;
            throw new InvalidDataException("the peer closed the connection inside a frame header");
        }
        int size = BinaryPrimitives.ReadInt32BigEndian(_buf.AsSpan(_pos, 4));
        if (size < 0 || size > MaxFrame) throw new InvalidDataException($"frame of {size} bytes is out of range (max {MaxFrame})");
        if (!await FillAsync(4 + size, ct)) throw new InvalidDataException("the peer closed the connection inside a frame");
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
        if (_buf.Length < need) Array.Resize(ref _buf, need + ReceiveSize);
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
            if (sizes[i] > MaxFrame) throw new ArgumentException($"frame of {sizes[i]} bytes exceeds {MaxFrame}");
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

    /// <summary>Sends bytes that are already whole frames (length prefixes included), with one send under the write lock:
    /// for an encoder that builds its frames straight into its own buffer (the agent's output frames).</summary>
    public async ValueTask WriteFramedAsync(ReadOnlyMemory<byte> frames, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct);
        try
        {
            int sent = 0;
            while (sent < frames.Length) sent += await socket.SendAsync(frames[sent..], SocketFlags.None, ct);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Writes one frame (length prefix and message) at the start of dest; returns the bytes written.</summary>
    public static int WriteFrame(Span<byte> dest, IMessage message)
    {
        int size = message.CalculateSize();
        if (size > MaxFrame) throw new ArgumentException($"frame of {size} bytes exceeds {MaxFrame}");
        BinaryPrimitives.WriteInt32BigEndian(dest, size);
        message.WriteTo(dest.Slice(4, size));
        return 4 + size;
    }

    public void Dispose()
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        socket.Dispose();
    }
}
