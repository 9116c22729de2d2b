using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using Google.Protobuf;

namespace Garden.Protocol.Agent;

/// <summary>The agent protocol's framing over one socket, used by both ends (gardend's AgentClient, and garden-agent,
/// which compiles this file in): a 4-byte big-endian length, then the protobuf bytes. Reads are buffered
/// (64 KiB receives); each write is one send, serialized by a lock.
/// The receive buffer is rented from the shared pool only while bytes arrive or wait in it: a connection that waits for
/// its peer (a container's log follower, an attached process that is quiet for hours, an exit watch's answer) waits
/// with a zero-byte receive and holds no buffer. gardend keeps one such connection per container or more: a 68 KiB
/// buffer each was 18 MB of gardend's live heap with 250 containers (bench/FINDINGS-memory.md).</summary>
public sealed class FrameSocket(Socket socket) : IDisposable
{
    public const int MaxFrame = 16 * 1024 * 1024;
    private const int ReceiveSize = 64 * 1024;

    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private byte[]? _buf; // rented; null while nothing is buffered and no read is filling it
    private int _pos, _len;
    private int _reading, _disposed;

    public Socket Socket => socket;

    /// <summary>Whether a receive buffer is held now (for tests: none while the connection waits for its peer).</summary>
    public bool HoldsBuffer => Volatile.Read(ref _buf) is not null;

    /// <summary>Reads one frame (valid until the next read or the dispose: the buffer is pooled); null on EOF between
    /// frames; InvalidDataException on a bad frame.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadFrameAsync(CancellationToken ct)
    {
        Interlocked.Exchange(ref _reading, 1);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
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
        finally
        {
            Interlocked.Exchange(ref _reading, 0);
            if (Volatile.Read(ref _disposed) != 0) DropBuffer();
        }
    }

    private async ValueTask<bool> FillAsync(int need, CancellationToken ct)
    {
        if (_len - _pos >= need) return true;
        if (_len == _pos)
        {
            // nothing buffered (the last frame is no longer the caller's): wait for the peer without a buffer
            _pos = _len = 0;
            if (socket.Available == 0)
            {
                ReturnBuffer();
                // a zero-byte receive can end on a readiness left from the last read (nothing new to read): wait again
                // unless there are bytes, or the socket reads as readable with none (the peer's end: the read below sees it)
                do await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, ct);
                while (socket.Available == 0 && !socket.Poll(0, SelectMode.SelectRead));
            }
        }
        else if (_pos > 0)
        {
            Buffer.BlockCopy(_buf!, _pos, _buf!, 0, _len - _pos);
            _len -= _pos;
            _pos = 0;
        }
        if (_buf is null) _buf = ArrayPool<byte>.Shared.Rent(Math.Max(need + ReceiveSize / 4, ReceiveSize));
        else if (_buf.Length < need + ReceiveSize / 4)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(need + ReceiveSize);
            Buffer.BlockCopy(_buf, 0, bigger, 0, _len);
            ArrayPool<byte>.Shared.Return(_buf);
            _buf = bigger;
        }
        while (_len < need)
        {
            int n = await socket.ReceiveAsync(_buf.AsMemory(_len), SocketFlags.None, ct);
            if (n == 0)
            {
                if (_len == 0) ReturnBuffer(); // the end between frames: nothing more will be read
                return false;
            }
            _len += n;
        }
        return true;
    }

    /// <summary>Back to the pool: by the reader, where no frame it returned is the caller's any more, and by a dispose
    /// while no read is in flight.</summary>
    private void ReturnBuffer()
    {
        if (Interlocked.Exchange(ref _buf, null) is { } buf) ArrayPool<byte>.Shared.Return(buf);
    }

    /// <summary>A read that ends after a dispose lets the buffer go, not to the pool: the frame it returns is in it.</summary>
    private void DropBuffer() => Interlocked.Exchange(ref _buf, null);

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
        // a read in flight still fills the buffer: that read lets it go when it ends (its frame stays the caller's);
        // otherwise the buffer goes back to the pool: the frames read are valid until the next read or the dispose
        Interlocked.Exchange(ref _disposed, 1);
        if (Volatile.Read(ref _reading) == 0) ReturnBuffer();
    }
}
