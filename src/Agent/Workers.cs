namespace Garden.Agent;

/// <summary>
/// Dedicated threads for a process's blocking work (its output readers and its stdin writer), kept a while for the next
/// process instead of one new thread each. Starting a thread is on a Run's critical path: <c>Thread.Start</c> returns only
/// once the new thread runs, which on a loaded host waits for a core (measured: the three threads of an attached Run were
/// the largest part of the agent's spawn after the fork+exec). A worker that is done waits up to <see cref="IdleFor"/> for
/// more work, at most <see cref="MaxIdle"/> of them, then ends: an agent with nothing running keeps no extra thread long.
/// The first Run of a container would start all of its threads (0.1-0.6 ms each, measured, the first one the slowest):
/// the agent starts them idle once it has answered gardend's first Ping (<see cref="Prestart"/>, from Server), while
/// gardend finishes the Create, so that Run finds them waiting. They are threads of the agent, not processes: nothing in
/// the container sees them (ps, the work cgroup's pids), and they end after <see cref="IdleFor"/> like any idle worker.
/// </summary>
internal static class Workers
{
    private const int MaxIdle = 4;

    /// <summary>What one process takes at most: a stdout and a stderr reader and a stdin writer (a terminal: one reader).</summary>
    public const int PerProcess = 3;

    private static readonly TimeSpan IdleFor = TimeSpan.FromSeconds(10);
    private static readonly Stack<Worker> Idle = new();
    private static int _prestarted;

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
        Start(new Worker(work));
    }

    /// <summary>Once per agent: starts idle workers up to <see cref="PerProcess"/> (counting the idle ones), for the first
    /// process. Returns how many it started.</summary>
    public static int Prestart()
    {
        if (Interlocked.Exchange(ref _prestarted, 1) != 0) return 0;
        int want;
        lock (Idle) want = PerProcess - Idle.Count;
        for (int i = 0; i < want; i++) Start(new Worker(null));
        return Math.Max(want, 0);
    }

    private static void Start(Worker w) => new Thread(w.Loop, 256 * 1024) { IsBackground = true, Name = "worker" }.Start();

    private sealed class Worker(Action? first)
    {
        // No spinning before it blocks (spinCount 0): a worker goes idle when its process ends, right when the reaper and
        // the connection that sends the exit need the cores; a SemaphoreSlim spun and yielded there (measured: ~65
        // involuntary switches per worker per Run).
        private readonly ManualResetEventSlim _ready = new(false, 0);
        private Action? _work = first;

        public void Give(Action work)
        {
            _work = work;
            _ready.Set();
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
                // Give is called once per time this worker is taken off the idle stack, so a Set is never lost by the Reset
                if (_ready.Wait(IdleFor))
                {
                    _ready.Reset();
                    continue;
                }
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
                _ready.Reset();
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
