using Garden.Protocol.Agent;

namespace Garden.Agent;

/// <summary>
/// The agent's log: one line per significant step, kept in a bounded in-memory queue until the daemon takes it over the
/// agent's own socket (FollowLog) and appends it to depot/&lt;handle&gt;/agent.log on the host.
///
/// Why not a file or a pipe: the agent is PID 1 of a hostile container. A host file handed over as a descriptor could be
/// reopened through /proc/1/fd by container root (that is how lines were forged into the host's log and 100 MB written past
/// a disk limit). A pipe whose read end gardend holds would close that, but a pipe blocks (or drops) the moment gardend is
/// away, and a new gardend could only find the read end again through /proc/&lt;pid&gt;/fd of the agent. A queue in the agent
/// holds what is logged while no daemon follows (bounded: the oldest lines go first and are counted), and any later daemon
/// takes it over the socket it already uses, which only the host's root may reach.
/// </summary>
internal static class AgentLog
{
    /// <summary>Lines and bytes kept while nobody follows; beyond them the oldest lines are dropped and counted.</summary>
    public const int MaxLines = 4096;
    public const int MaxBytes = 512 * 1024;
    private const int BatchBytes = 64 * 1024;

    private static readonly Lock Gate = new();
    private static readonly Queue<(long Seq, string Line)> Lines = new();
    private static long _nextSeq, _bytes, _dropped;
    private static long _inFlightTo = -1;     // lines up to this seq are being sent: an eviction of one is not a drop (yet)
    private static long _inFlightEvicted;      // ... unless the send fails
    private static int _follower;             // generation: a new follower supersedes the one before
    private static TaskCompletionSource _changed = NewSignal();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static void Info(string message) => Write("INFO", message);

    public static void Warn(string message) => Write("WARN", message);

    public static void Error(string message) => Write("ERROR", message);

    private static void Write(string level, string message)
    {
        var line = $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {level} {message}";
        TaskCompletionSource changed;
        lock (Gate)
        {
            Lines.Enqueue((_nextSeq++, line));
            _bytes += line.Length;
            while (Lines.Count > MaxLines || _bytes > MaxBytes)
            {
                var (seq, old) = Lines.Dequeue();
                _bytes -= old.Length;
                if (seq <= _inFlightTo) _inFlightEvicted++;
                else _dropped++;
            }
            changed = _changed;
            _changed = NewSignal();
        }
        changed.TrySetResult();
    }

    /// <summary>Lines waiting and lines dropped so far (for tests and the agent's own status).</summary>
    public static (int Waiting, long Dropped) Counts()
    {
        lock (Gate) return (Lines.Count, _dropped);
    }

    /// <summary>
    /// Serves one follower until it goes or a newer one comes: first a LogLines frame at once (maybe empty: the answer
    /// the daemon waits for), then every line as it is logged. Lines leave the queue only once written to the socket.
    /// </summary>
    public static async Task FollowAsync(FrameSocket conn, CancellationToken ct)
    {
        int me;
        TaskCompletionSource superseded;
        lock (Gate)
        {
            me = ++_follower;
            superseded = _changed;
            _changed = NewSignal();
        }
        superseded.TrySetResult(); // the follower before sees it is no longer the one
        bool first = true;
        var batch = new LogLines();
        while (!ct.IsCancellationRequested)
        {
            Task changed;
            long last = -1, dropped = 0;
            batch.Lines.Clear();
            lock (Gate)
            {
                if (_follower != me) return;
                changed = _changed.Task;
                int bytes = 0;
                foreach (var (seq, line) in Lines)
                {
                    if (bytes > 0 && bytes + line.Length > BatchBytes) break;
                    batch.Lines.Add(line);
                    bytes += line.Length;
                    last = seq;
                }
                dropped = _dropped;
                _dropped = 0;
                _inFlightTo = last;
                _inFlightEvicted = 0;
            }
            batch.Dropped = (ulong)dropped;
            if (batch.Lines.Count > 0 || dropped > 0 || first)
            {
                bool sent = false;
                try
                {
                    await conn.WriteAsync(new AgentEvent { Log = batch }, ct);
                    sent = true;
                    first = false;
                }
                finally
                {
                    lock (Gate)
                    {
                        if (sent)
                        {
                            while (Lines.Count > 0 && Lines.Peek().Seq <= last)
                            {
                                var (_, line) = Lines.Dequeue();
                                _bytes -= line.Length;
                            }
                        }
                        else
                        {
                            // not delivered: the count comes back, and so do lines evicted while they were in flight
                            _dropped += dropped + _inFlightEvicted;
                        }
                        _inFlightTo = -1;
                        _inFlightEvicted = 0;
                    }
                }
                continue;
            }
            await changed.WaitAsync(ct);
        }
    }
}
