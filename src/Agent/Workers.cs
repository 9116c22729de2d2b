namespace Garden.Agent;

/// <summary>
/// Dedicated threads for a process's blocking work (its output readers and its stdin writer), kept a while for the next
/// process instead of one new thread each. Starting a thread is on a Run's critical path: <c>Thread.Start</c> returns only
/// once the new thread runs, which on a loaded host waits for a core (measured: the three threads of an attached Run were
/// the largest part of the agent's spawn after the fork+exec). A worker that is done waits up to <see cref="IdleFor"/> for
/// more work, at most <see cref="MaxIdle"/> of them, then ends: an agent with nothing running keeps no extra thread long.
/// </summary>
internal static class Workers
{
    private const int MaxIdle = 4;
    private static readonly TimeSpan IdleFor = TimeSpan.FromSeconds(10);
    private static readonly Stack<Worker> Idle = new();

    /// <summary>Runs <paramref name="work"/> on a thread of its own (an idle worker, or a new one); the work must not throw.</summary>
    public static void Run(Action work)
    {
        Worker? w;
        lock (Idle) Idle.TryPop(out w);
        if (w is not null)
        {
            w.Give(work);
            return;
        }
        w = new Worker(work);
        new Thread(w.Loop, 256 * 1024) { IsBackground = true, Name = "worker" }.Start();
    }

    private sealed class Worker(Action first)
    {
        private readonly SemaphoreSlim _ready = new(0);
        private Action? _work = first;

        public void Give(Action work)
        {
            _work = work;
            _ready.Release();
        }

        public void Loop()
        {
            while (true)
            {
                RunOne();
                lock (Idle)
                {
                    if (Idle.Count >= MaxIdle) return;
                    Idle.Push(this);
                }
                if (_ready.Wait(IdleFor)) continue;
                lock (Idle)
                {
                    // still idle: nobody took it, it ends; taken meanwhile: its work is on its way
                    if (Idle.Contains(this))
                    {
                        Remove(this);
                        return;
                    }
                }
                _ready.Wait();
            }
        }

        /// <summary>In a frame of its own: an idle worker keeps no reference to its last work (a closure over a process
        /// and its output buffer).</summary>
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        private void RunOne()
        {
            try
            {
                Interlocked.Exchange(ref _work, null)?.Invoke();
            }
            catch (Exception e)
            {
                AgentLog.Error($"worker: {e}");
            }
        }

        /// <summary>Caller holds the lock. Takes <paramref name="w"/> out of the idle stack, the others keep their order.</summary>
        private static void Remove(Worker w)
        {
            var rest = Idle.Where(x => x != w).Reverse().ToArray();
            Idle.Clear();
            foreach (var x in rest) Idle.Push(x);
        }
    }
}
