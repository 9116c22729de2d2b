namespace Garden.Agent;

/// <summary>
/// The agent's processes by id and by pid. Spawning holds <see cref="Gate"/> from fork until the pid is registered,
/// and the reaper takes it before looking a pid up, so a process that exits at once is never missed.
/// </summary>
internal sealed class ProcessTable
{
    private readonly Dictionary<string, ManagedProcess> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<int, ManagedProcess> _running = [];
    private readonly AutoResetEvent _childStarted = new(false);

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

    /// <summary>Caller holds <see cref="Gate"/>.</summary>
    public void AddLocked(ManagedProcess p)
    {
        _byId.Add(p.Id, p);
        _running[p.Pid] = p;
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
                    if (p != null) p.OnReaped(status);
                    else AgentLog.Info($"reaped pid {pid} status {status}");
                }
                else if (errno == Native.ECHILD)
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
