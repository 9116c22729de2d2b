using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace Garden.Host.Gateway;

/// <summary>
/// The buffers Kestrel reads gRPC's socket into. Kestrel's own pool hands out 4 KiB blocks, and its socket loop receives
/// into one block at a time: a StreamIn's 200 MiB arrived in ~51,000 recvmsg calls, each flushed to the HTTP/2 parser
/// (a thread-pool wakeup when it waited), and that loop was a fifth of gardend's CPU on the stream (perf, bench/StreamProbe;
/// bench/FINDINGS-streams.md). Blocks of <see cref="BlockBytes"/> take up to 16 of HTTP/2's 16 KiB DATA frames per receive.
/// The blocks come from the shared array pool and go back to it when Kestrel is done with them: an idle connection holds
/// none (Kestrel waits for data before it asks for a buffer).
/// </summary>
internal sealed class ReceiveBlocks : IMemoryPoolFactory<byte>
{
    public const int BlockBytes = 64 * 1024;

    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => Pool.Instance;

    private sealed class Pool : MemoryPool<byte>
    {
        public static readonly Pool Instance = new();

        public override int MaxBufferSize => BlockBytes;

        public override IMemoryOwner<byte> Rent(int minBufferSize = -1) =>
            new Block(ArrayPool<byte>.Shared.Rent(Math.Max(BlockBytes, minBufferSize)));

        protected override void Dispose(bool disposing)
        {
            // shared by every connection for the process's life; the arrays are the shared pool's
        }
    }

    private sealed class Block(byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _array, null) is { } a) ArrayPool<byte>.Shared.Return(a);
        }
    }
}
