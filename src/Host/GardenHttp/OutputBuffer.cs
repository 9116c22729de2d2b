namespace Garden.Host.GardenHttp;

/// <summary>One output stream (stdout or stderr) of one Run/Attach, between the process's events and the
/// stdout/stderr request that will carry them. Garden's client asks for those streams only after Run has answered, on
/// connections of their own, so output is held from the start:
/// <list type="bullet">
/// <item>no reader yet: kept up to <c>capacity</c> bytes; a write that does not fit is dropped whole (counted), as
/// guardian drops — the process must never wait for a client that may never come (a Run without Stdout);</item>
/// <item>a reader: writes wait for room (the process's output goes at the client's pace; nothing dropped);</item>
/// <item>the reader went away: everything is discarded;</item>
/// <item>completed: the reader gets what is held, then the end.</item>
/// </list>
/// One reader at most (a second request for the same stream finds it taken).</summary>
public sealed class OutputBuffer(int capacity)
{
    private readonly object _gate = new();
    private readonly Queue<ReadOnlyMemory<byte>> _chunks = new();
    private int _held;
    private bool _completed, _readerAttached, _readerGone;
    private TaskCompletionSource? _dataOrEnd, _room;

    public long Dropped { get; private set; }

    public int Held
    {
        get { lock (_gate) return _held; }
    }

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (data.IsEmpty) return;
        while (true)
        {
            Task room;
            lock (_gate)
            {
                if (_completed || _readerGone) return;
                if (_held + data.Length <= capacity || _held == 0 && _readerAttached)
                {
                    _chunks.Enqueue(data);
                    _held += data.Length;
                    Wake(ref _dataOrEnd);
                    return;
                }
                if (!_readerAttached)
                {
                    Dropped += data.Length;
                    return;
                }
                room = (_room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await room.WaitAsync(ct);
        }
    }

    /// <summary>No more output: the reader gets what is held, then the end.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
            Wake(ref _dataOrEnd);
            Wake(ref _room);
        }
    }

    /// <summary>Claims the one reader's place; false when it was taken before.</summary>
    public bool TryAttachReader()
    {
        lock (_gate)
        {
            if (_readerAttached || _readerGone) return false;
            _readerAttached = true;
            return true;
        }
    }

    /// <summary>The reader is gone (its client closed, or it read to the end): what is held is released, what comes is
    /// discarded, and a waiting writer goes on.</summary>
    public void DetachReader()
    {
        lock (_gate)
        {
            _readerGone = true;
            _chunks.Clear();
            _held = 0;
            Wake(ref _room);
        }
    }

    /// <summary>The next piece of output, or null at the end (completed and all of it read).</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadAsync(CancellationToken ct)
    {
        while (true)
        {
            Task more;
            lock (_gate)
            {
                if (_chunks.TryDequeue(out var chunk))
                {
                    _held -= chunk.Length;
                    Wake(ref _room);
                    return chunk;
                }
                if (_completed || _readerGone) return null;
                more = (_dataOrEnd ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await more.WaitAsync(ct);
        }
    }

    private static void Wake(ref TaskCompletionSource? waiter)
    {
        waiter?.TrySetResult();
        waiter = null;
    }
}
