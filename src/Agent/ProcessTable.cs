using Garden.Protocol.Agent;
using Tmds.Linux;

namespace Garden.Agent;

/// <summary>
/// The agent's processes by id and by pid. Spawning holds <see cref="Gate"/> from fork until the pid is registered,
/// and the reaper takes it before looking a pid up, so a process that exits at once is never missed.
/// Bounded: a process whose exit reached the daemon (a stream delivered it, or a List answer carried it) and that no
/// connection streams moves to the recent exits, keeping only a tail of its output; the oldest recent exits are forgotten
/// beyond <see cref="RecentExitsMax"/> of them or <see cref="RecentExitsBytes"/> of their output. A process whose exit
/// nobody has seen yet (the daemon is away) is kept whole, however long that takes.
/// </summary>
internal sealed class ProcessTable
{
    /// <summary>Exited processes kept for late attaches (Attach, List) once their exit was reported.</summary>
    public const int RecentExitsMax = 64;

    /// <summary>Output those recent exits may hold together.</summary>
    public const long RecentExitsBytes = 4L * 1024 * 1024;

    private readonly Dictionary<string, ManagedProcess> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<int, ManagedProcess> _running = [];
    private readonly LinkedList<(ManagedProcess Process, long Bytes)> _recent = new();
    private readonly AutoResetEvent _childStarted = new(false);
    private TaskCompletionSource _exited = NewExitSignal();
    private long _recentBytes;
    private long _forgotten;
    private long _released;       // output bytes let go since the last collection
    private int _collecting;

    /// <summary>Output let go (trimmed or forgotten) before the agent collects and returns the memory: its buffers are
    /// long-lived objects that only a full collection frees, and the agent counts against the container's memory limit.</summary>
    public const long CollectAfterBytes = 8L * 1024 * 1024;

    public object Gate { get; } = new();

    public bool Contains(string id)
    {
        lock (Gate) return _byId.ContainsKey(id);
    }

    public ManagedProcess? Find(string id)
    {
        lock (Gate) return _byId.GetValueOrDefault(id);
    }

    public ManagedProcess[] All()
    {
        lock (Gate) return [.. _byId.Values];
    }

    /// <summary>Processes held now (live and recent exits), and how many were forgotten so far.</summary>
    public (int Held, int Recent, long Forgotten) Counts()
    {
        lock (Gate) return (_byId.Count, _recent.Count, _forgotten);
    }

    /// <summary>The List answer: every process held, each with whether its exit was reported before.</summary>
    public ProcessList List()
    {
        var list = new ProcessList();
        lock (Gate)
            foreach (var p in _byId.Values) list.Processes.Add(p.ToEntry(p.ExitReported));
        return list;
    }

    private static TaskCompletionSource NewExitSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when a process has exited whose exit was not reported yet: at once if one is there now,
    /// otherwise at the next exit (or at the timeout, or when ct is cancelled: the caller then looks at the List anyway).
    /// True when such an exit is there.</summary>
    public async Task<bool> WaitUnreportedExitAsync(TimeSpan timeout, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        while (true)
        {
            Task next;
            lock (Gate)
            {
                foreach (var p in _byId.Values)
                    if (!p.ExitReported && p.Output.Exit != null) return true;
                next = _exited.Task;
            }
            try
            {
                await next.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }
    }

    /// <summary>The reaper set a process's exit: wake the exit waiters.</summary>
    private void ExitHappened()
    {
        TaskCompletionSource done;
        lock (Gate)
        {
            done = _exited;
            _exited = NewExitSignal();
        }
        done.TrySetResult();
    }

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    public void AddLocked(ManagedProcess p)
    {
        _byId.Add(p.Id, p);
        _running[p.Pid] = p;
    }

    /// <summary>A connection starts streaming p (a process found by id; it may be a recent exit).</summary>
    public void StreamStarted(ManagedProcess p)
    {
        lock (Gate) p.Streams++;
    }

    /// <summary>A connection stopped streaming p; the last one out may let it settle into the recent exits.</summary>
    public void StreamStopped(ManagedProcess p)
    {
        lock (Gate)
        {
            p.Streams--;
            if (p.Streams == 0 && p.Forgotten) p.Output.Discard();
            SettleLocked(p);
        }
    }

    /// <summary>p's exit reached the daemon: a stream wrote Exited, or a List answer carrying it was written.</summary>
    public void ExitReported(ManagedProcess p)
    {
        lock (Gate)
        {
            p.ExitReported = true;
            SettleLocked(p);
        }
    }

    /// <summary>The exits in a List answer that was written reached the daemon.</summary>
    public void ExitsReported(ProcessList written)
    {
        lock (Gate)
        {
            foreach (var e in written.Processes)
            {
                if (!e.Exited || !_byId.TryGetValue(e.Id, out var p)) continue;
                p.ExitReported = true;
                SettleLocked(p);
            }
        }
    }

    private void SettleLocked(ManagedProcess p)
    {
        if (p.Retired || p.Forgotten || !p.ExitReported || p.Streams > 0 || p.Output.Exit is null) return;
        p.Retired = true;
        long before = p.Output.Held;
        long held = p.Output.KeepTail(ManagedProcess.RetainDelivered, ManagedProcess.RetainUnsent);
        Released(before - held);
        _recent.AddLast((p, held));
        _recentBytes += held;
        while (_recent.Count > RecentExitsMax || _recentBytes > RecentExitsBytes && _recent.Count > 1)
        {
            var (old, bytes) = _recent.First!.Value;
            _recent.RemoveFirst();
            _recentBytes -= bytes;
            if (_byId.TryGetValue(old.Id, out var held2) && ReferenceEquals(held2, old)) _byId.Remove(old.Id);
            old.Forgotten = true;
            _forgotten++;
            // a stream still reading it finishes first
            if (old.Streams == 0) old.Output.Discard();
            Released(bytes);
        }
    }

    /// <summary>Caller holds <see cref="Gate"/>. Once enough was let go, one full, compacting collection returns it to the
    /// kernel (at most one at a time, off every lock).</summary>
    private void Released(long bytes)
    {
        _released += Math.Max(0, bytes);
        if (_released < CollectAfterBytes || Interlocked.Exchange(ref _collecting, 1) == 1) return;
        _released = 0;
        ThreadPool.UnsafeQueueUserWorkItem(_ =>
        {
            try
            {
                Thread.Sleep(100); // let a burst of exits settle into one collection
                GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            }
            finally
            {
                Volatile.Write(ref _collecting, 0);
            }
        }, null);
    }

    /// <summary>A child was forked: wake the reaper if it waits for children to exist.</summary>
    public void ChildForked() => _childStarted.Set();

    /// <summary>The reaper thread: waitpid(-1) for every child, ours or reparented orphans.</summary>
    public void StartReaper()
    {
        var t = new Thread(ReapLoop, 256 * 1024) { IsBackground = true, Name = "reaper" };
        t.Start();
    }

    private void ReapLoop()
    {
        while (true)
        {
            try
            {
                int pid = Native.WaitAny(out int status, out int errno);
                if (pid > 0)
                {
                    ManagedProcess? p;
                    lock (Gate)
                    {
                        if (_running.Remove(pid, out p))
                        {
                        }
                    }
                    if (p != null)
                    {
                        p.OnReaped(status);
                        ExitHappened();
                    }
                    else AgentLog.Info($"reaped pid {pid} status {status}");
                }
                else if (errno == LibC.ECHILD)
                {
                    // no children now; orphans are reparented to us only while some child exists, so wait for a spawn
                    _childStarted.WaitOne(1000);
                }
                else
                {
                    AgentLog.Error($"waitpid: {Native.ErrorText(errno)}");
                    Thread.Sleep(100);
                }
            }
            catch (Exception e)
            {
                AgentLog.Error($"reaper: {e}");
                Thread.Sleep(100);
            }
        }
    }
}
