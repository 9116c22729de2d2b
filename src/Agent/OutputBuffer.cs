using Garden.Protocol.Agent;

namespace Garden.Agent;

/// <summary>
/// A process's stdout and stderr as one sequence with absolute offsets, bounded by a capacity.
/// Bytes sent to at least one connection may be evicted; bytes never sent are never evicted: when the buffer holds
/// capacity unsent bytes, <see cref="Reserve"/> blocks the pipe reader (backpressure: the process blocks on write).
/// Once the process's exit was reported and nobody follows it, the buffer keeps only a tail (<see cref="KeepTail"/>), sent
/// or not; once the process is forgotten, it takes nothing more (<see cref="Discard"/>).
/// The output is complete at EOF of every stream, or, once the wait for EOF was given up (<see cref="ForceDone"/>: a
/// background grandchild may hold a pipe open), once every byte its pipes held then was appended: a reader held back by
/// a full buffer, or not yet run, leaves bytes of the process in its pipe, and those are its output all the same.
/// </summary>
internal sealed class OutputBuffer
{
    private readonly record struct Chunk(long Offset, byte[] Data, StreamKind Stream)
    {
        public long End => Offset + Data.Length;
    }

    /// <summary>A piece of a chunk to send.</summary>
    public readonly record struct Slice(long Offset, ReadOnlyMemory<byte> Data, StreamKind Stream);

    /// <summary>What a sender may do next.</summary>
    public readonly record struct Snapshot(long MissedFrom, long MissedTo, long NewPosition, Exited? Exit, Task Changed)
    {
        public bool Missed => MissedTo > MissedFrom;
    }

    private readonly object _gate = new();
    private readonly int _capacity;
    private readonly List<Chunk> _chunks = [];
    private int _head;
    private long _start, _end, _sent;
    private int _reserved;
    private int _openStreams;
    private bool _forcedDone;
    // per stream (StreamKind as index): EOF seen; a reader between its Reserve and its Append/Unreserve (it may hold bytes
    // read from the pipe, or wait for room to read them); bytes appended; and, once the wait for EOF was given up, the
    // appended count the stream must reach (its bytes then appended or in flight, plus those its pipe held), -1 until
    // measured
    private readonly bool[] _ended;
    private readonly int[] _busy;
    private readonly long[] _appended;
    private readonly long[] _drainTo;
    private readonly Func<int, long> _pending;
    private int _tailDelivered = -1, _tailUnsent = -1; // KeepTail: what stays from now on (-1: the whole capacity)
    private bool _discarded;
    private Exited? _exit;
    private TaskCompletionSource _changed = NewSignal();
    private bool _signalTaken; // a Take handed _changed out since it was made: a sender may wait on it

    /// <param name="pending">Bytes waiting in stream i's pipe now (0 once it is closed); called under the buffer's lock,
    /// only while no reader of that stream holds a reservation, so no read of that pipe runs meanwhile.</param>
    public OutputBuffer(int capacity, int streams, Func<int, long> pending)
    {
        _capacity = Math.Max(1, capacity);
        _openStreams = streams;
        _ended = new bool[streams];
        _busy = new int[streams];
        _appended = new long[streams];
        _drainTo = new long[streams];
        Array.Fill(_drainTo, -1L);
        _pending = pending;
    }

    public int Capacity => _capacity;

    /// <summary>Offset one past the last byte produced so far.</summary>
    public long End
    {
        get { lock (_gate) return _end; }
    }

    public long Start
    {
        get { lock (_gate) return _start; }
    }

    public Exited? Exit
    {
        get { lock (_gate) return _exit; }
    }

    /// <summary>True while a pipe reader waits for a connection to take data.</summary>
    public bool Blocked
    {
        get { lock (_gate) return _capacity - (_end - _sent) - _reserved <= 0; }
    }

    /// <summary>The senders' signal. Its continuations (a waiting sender, <see cref="Server"/>'s send loop) run where it
    /// is completed unless the completer hands them off: new output hands them to the pool (<see cref="Append"/>: the pipe
    /// reader goes back to reading), the end of the output runs them inline (<see cref="Change"/>).</summary>
    private static TaskCompletionSource NewSignal() => new();

    // ---- pipe reader side ----

    /// <summary>Blocks until there is room for unsent bytes; returns how many bytes (at most max) the reader may read,
    /// 0 once the buffer was discarded (the reader stops). Called once the stream's pipe is readable; every Reserve is
    /// followed by one <see cref="Append"/> or <see cref="Unreserve"/> of the same stream.</summary>
    public int Reserve(StreamKind stream, int max)
    {
        lock (_gate)
        {
            _busy[(int)stream]++;
            while (true)
            {
                if (_discarded) return 0;
                if (_tailDelivered >= 0)
                {
                    // only a tail stays: the reader drains the pipe without waiting for anyone
                    _reserved += max;
                    return max;
                }
                long room = _capacity - (_end - _sent) - _reserved;
                if (room > 0)
                {
                    int n = (int)Math.Min(room, max);
                    _reserved += n;
                    return n;
                }
                Monitor.Wait(_gate);
            }
        }
    }

    public void Unreserve(StreamKind stream, int reserved)
    {
        TaskCompletionSource? changed;
        lock (_gate)
        {
            _reserved -= reserved;
            ReaderDone((int)stream);
            Monitor.PulseAll(_gate);
            changed = NextSignalLocked();
        }
        // a reader done with its pipe (its EOF): what it measured may complete the output, so the senders run here, as
        // for every other change of the output's end (Change)
        changed?.TrySetResult();
    }

    public void Append(StreamKind stream, ReadOnlySpan<byte> data, int reserved)
    {
        TaskCompletionSource? changed;
        lock (_gate)
        {
            _reserved -= reserved;
            _appended[(int)stream] += data.Length;
            ReaderDone((int)stream);
            if (data.Length > 0 && !_discarded)
            {
                _chunks.Add(new Chunk(_end, data.ToArray(), stream));
                _end += data.Length;
                if (_tailDelivered >= 0) TrimToTail();
                else Evict();
            }
            changed = NextSignalLocked();
        }
        // the senders run on the pool: this reader goes back to its pipe at once (as before)
        if (changed is not null) ThreadPool.UnsafeQueueUserWorkItem(static c => c.TrySetResult(), changed, preferLocal: false);
    }

    private void Evict()
    {
        // only bytes already sent may go
        long newStart = Math.Min(_end - _capacity, _sent);
        if (newStart <= _start) return;
        _start = newStart;
        while (_head < _chunks.Count && _chunks[_head].End <= _start) _chunks[_head++] = default;
        if (_head > 64 && _head * 2 > _chunks.Count)
        {
            _chunks.RemoveRange(0, _head);
            _head = 0;
        }
    }

    /// <summary>Caller holds the gate: a reader of stream i appended what it read (or read nothing); once the wait for
    /// EOF was given up, the first such moment measures what the stream must still deliver.</summary>
    private void ReaderDone(int i)
    {
        _busy[i]--;
        if (_forcedDone && _busy[i] == 0) Measure(i);
    }

    /// <summary>Caller holds the gate; no reader of stream i holds a reservation, so nothing is read from its pipe now:
    /// everything of it below its appended count plus what its pipe holds must be appended before the output is
    /// complete.</summary>
    private void Measure(int i)
    {
        if (_drainTo[i] >= 0 || _ended[i]) return;
        _drainTo[i] = _appended[i] + Math.Max(0, _pending(i));
    }

    /// <summary>One pipe hit EOF.</summary>
    public void StreamEnded(StreamKind stream) => Change(() =>
    {
        if (_ended[(int)stream]) return;
        _ended[(int)stream] = true;
        _openStreams--;
    });

    /// <summary>Stop waiting for EOF (a background grandchild holds the pipe open): the output is complete once what the
    /// pipes hold now was appended (each stream measured now, or, where a reader holds a reservation, when it is done).</summary>
    public void ForceDone() => Change(() =>
    {
        _forcedDone = true;
        for (int i = 0; i < _busy.Length; i++)
            if (_busy[i] == 0) Measure(i);
    });

    /// <summary>Caller holds the gate: every stream is at EOF, or the wait for EOF was given up and each open stream
    /// appended what it held then.</summary>
    private bool OutputComplete()
    {
        if (_openStreams <= 0) return true;
        if (!_forcedDone) return false;
        for (int i = 0; i < _ended.Length; i++)
            if (!_ended[i] && (_drainTo[i] < 0 || _appended[i] < _drainTo[i])) return false;
        return true;
    }

    public void SetExit(Exited exit) => Change(() => _exit = exit);

    public bool StreamsOpen
    {
        get { lock (_gate) return _openStreams > 0; }
    }

    /// <summary>A change of the output's end (an EOF, the exit, the forced end): the waiting senders run here, on the
    /// thread that saw it (the reaper, or a pipe reader whose work is over), so the last of them to come writes Exited
    /// to the daemon without a hand-off to a pool thread (each wakes a sleeping thread: bench/FINDINGS-run.md). A
    /// sender does not block: it takes what is there and sends it (a send that cannot complete at once goes on
    /// asynchronously), then waits again or ends. The caller holds no lock.</summary>
    private void Change(Action change)
    {
        TaskCompletionSource? changed;
        lock (_gate)
        {
            change();
            changed = NextSignalLocked();
        }
        changed?.TrySetResult();
    }

    /// <summary>Caller holds the gate. The signal to complete for a change, replaced by a new one; null when no sender
    /// took it (nobody can wait on it: a later Take sees the change under the gate).</summary>
    private TaskCompletionSource? NextSignalLocked()
    {
        if (!_signalTaken) return null;
        _signalTaken = false;
        var changed = _changed;
        _changed = NewSignal();
        return changed;
    }

    // ---- connection side ----

    /// <summary>
    /// Collects up to maxBytes of buffered output from position into slices. If position is below the oldest
    /// buffered byte, reports the gap (and nothing else). Exit is set once everything up to the end was taken and
    /// the output is complete.
    /// </summary>
    public Snapshot Take(long position, int maxBytes, List<Slice> slices)
    {
        slices.Clear();
        lock (_gate)
        {
            var changed = _changed.Task;
            _signalTaken = true;
            if (position < _start) return new Snapshot(position, _start, _start, null, changed);

            long pos = position;
            int taken = 0;
            int i = FindChunk(pos);
            while (i >= 0 && i < _chunks.Count && taken < maxBytes)
            {
                var c = _chunks[i];
                int from = (int)(pos - c.Offset);
                int len = Math.Min(c.Data.Length - from, maxBytes - taken);
                if (len <= 0) break;
                slices.Add(new Slice(pos, new ReadOnlyMemory<byte>(c.Data, from, len), c.Stream));
                pos += len;
                taken += len;
                if (pos < c.End) break;
                i++;
            }

            bool complete = _exit != null && pos >= _end && OutputComplete();
            return new Snapshot(0, 0, pos, complete ? _exit : null, changed);
        }
    }

    private int FindChunk(long pos)
    {
        int lo = _head, hi = _chunks.Count - 1;
        if (lo > hi || pos >= _end) return -1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_chunks[mid].Offset <= pos) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }

    /// <summary>
    /// The process's exit was reported and nobody streams it: from now on keep the last <paramref name="delivered"/> bytes,
    /// or the last <paramref name="unsent"/> bytes where they were never sent (whichever is more), and stop holding the
    /// process back. A later attacher from an older offset gets OutputMissed, never a silent gap. Returns the bytes kept.
    /// </summary>
    public long KeepTail(int delivered, int unsent)
    {
        lock (_gate)
        {
            _tailDelivered = Math.Max(0, delivered);
            _tailUnsent = Math.Max(_tailDelivered, unsent);
            TrimToTail();
            Monitor.PulseAll(_gate); // a reader waiting for room goes on
            return _end - _start;
        }
    }

    /// <summary>Bytes held now.</summary>
    public long Held
    {
        get { lock (_gate) return _end - _start; }
    }

    private void TrimToTail()
    {
        long keepFrom = Math.Min(_end - _tailDelivered, Math.Max(_sent, _end - _tailUnsent));
        if (keepFrom <= _start) return;
        _start = keepFrom;
        _sent = Math.Max(_sent, _start);
        while (_head < _chunks.Count && _chunks[_head].End <= _start) _head++;
        _chunks.RemoveRange(0, _head);
        _head = 0;
        // the first chunk may begin below the new start: keep only its part from there, not the whole array
        if (_chunks.Count > 0 && _chunks[0].Offset < _start)
        {
            var c = _chunks[0];
            _chunks[0] = new Chunk(_start, c.Data.AsSpan((int)(_start - c.Offset)).ToArray(), c.Stream);
        }
        if (_chunks.Capacity > 16 && _chunks.Count * 4 < _chunks.Capacity) _chunks.TrimExcess();
    }

    /// <summary>The process is forgotten: drop what is held and take nothing more (its pipe reader stops at its next
    /// read, so a background grandchild that keeps the pipe open gets EPIPE instead of an agent thread).</summary>
    public void Discard()
    {
        lock (_gate)
        {
            _discarded = true;
            _start = _end;
            _sent = _end;
            _chunks.Clear();
            _chunks.TrimExcess();
            _head = 0;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>A connection delivered everything below upTo: that may now be evicted; readers may go on.</summary>
    public void MarkSent(long upTo)
    {
        lock (_gate)
        {
            if (upTo <= _sent) return;
            _sent = Math.Min(upTo, _end);
            Monitor.PulseAll(_gate);
        }
    }
}
