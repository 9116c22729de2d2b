using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;

namespace Garden.Actors.Process;

/// <summary>One process in a container. The agent owns the OS process (it is its parent and keeps its output);
/// this actor owns the daemon's view of it: spawning, every attached stream, signals, and its exit status.
/// It lives while there is something to do: once the process has exited and its exit was published (or it never started,
/// or the agent forgot it), and no client is attached, it tells its container, which stops it. A later Attach goes through
/// the agent's recent exits (a new actor for it), or gets NotFound once the agent forgot the process.</summary>
public sealed class ProcessActor : ReceiveActor, IWithTimers
{
    /// <summary>How long the container leaves the exit of an attached process to its stream before it watches for it too.
    /// The stream reads the agent's Exited anyway; the container's watch (a second agent connection held for the exit,
    /// <see cref="ContainerActor"/>) was opened at every Run right after Spawned, when the process starts and often
    /// exits, and the agent answered it at the same moment as the stream (bench/FINDINGS-run.md). A process that exits
    /// sooner, with its client reading, needs no watch; a longer one, or one whose client went away or does not read,
    /// is watched as before, its exit event late by this at most.</summary>
    public static readonly TimeSpan StreamSeesExitFor = TimeSpan.FromMilliseconds(100);

    private const string ExitWatchTimer = "exit-watch";

    public ITimerScheduler Timers { get; set; } = null!;

    private Task<IAgentClient> _agent;          // a pea's once it is made (ProcessProtocol.PeaLink)
    private readonly ProcessProtocol.PeaLink? _pea;
    private bool _peaReleasing, _peaReleased;
    private readonly CancellationTokenSource _stopping = new();
    private readonly string _handle;
    private readonly string _id;
    private readonly ContainerLog _log;
    private int _attached;
    private int _inFlight;   // starts and attaches whose reply is not out yet
    private int _handled;    // messages taken from the container (see ProcessIdle)
    private bool _gone;      // never started, or forgotten by the agent: no exit will come
    private System.Diagnostics.Stopwatch? _sinceStart; // for the debug timing lines of a Run (make bench reads them)

    /// <param name="exitKnown">The process had exited and its exit was published before this actor (an attach to a recent
    /// exit): it is not published again.</param>
    public ProcessActor(IAgentClient agent, string handle, string id, Protocol.Agent.Exited? exitKnown = null,
        ProcessProtocol.PeaLink? pea = null)
    {
        _pea = pea;
        _agent = Task.FromResult(pea is { Adopted: true } ? pea.Peas.AgentOf(id) : agent);
        _handle = handle;
        _id = id;
        _log = ContainerLog.For(Context.System, handle);
        if (exitKnown is not null) ExitCode = exitKnown.ExitCode;

        Receive<ProcessProtocol.StartProcess>(msg =>
        {
            _handled++;
            Start(msg);
        });
        Receive<ContainerProtocol.AttachProcess>(msg =>
        {
            _handled++;
            Attach(msg);
        });
        Receive<ContainerProtocol.SignalProcess>(msg =>
        {
            _handled++;
            Signal(msg);
            ReportIfIdle();
        });
        Receive<ProcessProtocol.ProcessExitSeen>(e =>
        {
            _handled++;
            Exited(e.ExitCode);
        });
        Receive<ProcessProtocol.ProcessGone>(_ =>
        {
            _handled++;
            if (ExitCode is null)
            {
                _log.Warning("process {0}: the agent forgot it before its exit was seen here", _id);
                _gone = true;
            }
            ReportIfIdle();
        });
        Receive<ProcessProtocol.ExitObserved>(e => Exited(e.ExitCode));
        Receive<PeaSpawned>(_ => WatchPeaExit());
        Receive<ContainerProtocol.SetProcessTty>(msg =>
        {
            _handled++;
            var (agentTask, pid) = (_agent, _id);
            Task.Run(async () => await (await agentTask.ConfigureAwait(false)).SetTtyAsync(pid, msg.Size.Rows, msg.Size.Cols, CancellationToken.None).ConfigureAwait(false))
                .ContinueWith(t => t.IsCompletedSuccessfully ? HostProtocol.Done.Instance : Fail(t.Exception!))
                .PipeTo(Sender);
        });
        Receive<ProcessProtocol.PeaExitPoll>(poll =>
        {
            if (poll.ExitCode is { } code) Exited(code);
            else if (poll.Gone && ExitCode is null)
            {
                _log.Warning("process {0}: its pea's agent is gone before its exit was seen here", _id);
                _gone = true;
                ReportIfIdle();
            }
        });
        Receive<ProcessProtocol.PeaReleased>(_ =>
        {
            _peaReleasing = false;
            _peaReleased = true;
            Context.Parent.Tell(new ProcessProtocol.PeaGone(_id));
            ReportIfIdle();
        });
        Receive<ProcessProtocol.ProcessOpDone>(done =>
        {
            _inFlight--;
            if (done.Spawned && done.Attached) Timers.StartSingleTimer(ExitWatchTimer, ProcessProtocol.ExitWatchDue.Instance, StreamSeesExitFor);
            else if (done.Spawned) Context.Parent.Tell(new ProcessProtocol.ProcessSpawned(_id));
            if (done.StartFailed) _gone = true;
            ReportIfIdle();
        });
        // Counted from the streams themselves (opened when a client got one, closed when it went), so a Run or an Attach
        // that failed never counts; the container pauses its grace timer while any client is attached.
        Receive<ProcessProtocol.StreamOpened>(_ =>
        {
            _attached++;
            Context.Parent.Tell(new ProcessProtocol.ClientsChanged(+1));
        });
        Receive<ProcessProtocol.ExitWatchDue>(_ => WatchExitIfUnseen());
        Receive<ProcessProtocol.StreamClosed>(_ =>
        {
            if (_attached == 0) return;
            _attached--;
            // its client went before the exit: nobody reads the stream any more, the container watches from now on
            if (_attached == 0 && Timers.IsTimerActive(ExitWatchTimer)) WatchExitIfUnseen();
            Context.Parent.Tell(new ProcessProtocol.ClientsChanged(-1));
            ReportIfIdle();
        });
    }

    /// <summary>The container watches for the exit of this attached process, unless a stream saw it already.</summary>
    private void WatchExitIfUnseen()
    {
        Timers.Cancel(ExitWatchTimer);
        if (ExitCode is null && !_gone) Context.Parent.Tell(new ProcessProtocol.ProcessSpawned(_id));
    }

    /// <summary>A pea's process runs: its exit is watched here (<see cref="WatchPeaExit"/>).</summary>
    private sealed record PeaSpawned
    {
        public static readonly PeaSpawned Instance = new();
    }

    private void Exited(int exitCode)
    {
        if (ExitCode is null)
        {
            _log.Info("process {0} exited with {1}", _id, exitCode);
            if (_sinceStart is { } clock) _log.Debug("run: exit seen finished in {0:0.00} ms", clock.Elapsed.TotalMilliseconds);
            Context.System.EventStream.Publish(new EventsProtocol.ContainerEvent(_handle, EventsProtocol.ContainerEvent.ProcessExited, DateTimeOffset.UtcNow, _id, exitCode));
        }
        ExitCode = exitCode;
        ReportIfIdle();
    }

    /// <summary>Nothing left to do: the container may stop this actor (it checks no message is on its way).</summary>
    private void ReportIfIdle()
    {
        if (_attached == 0 && _inFlight == 0 && (ExitCode is not null || _gone))
        {
            // a pea is released once nobody needs it any more (its process exited, no client reads it)
            if (_pea is not null && !_peaReleased)
            {
                if (_peaReleasing) return;
                _peaReleasing = true;
                var (peas, pid, log, self) = (_pea.Peas, _id, _log, Self);
                Task.Run(() => peas.DestroyAsync(pid, killFirst: false)).ContinueWith(t =>
                {
                    if (!t.IsCompletedSuccessfully) log.Error(t.Exception!.GetBaseException(), "pea {0}: release failed: {1}", pid, t.Exception!.GetBaseException().Message);
                    self.Tell(ProcessProtocol.PeaReleased.Instance);
                });
                return;
            }
            Context.Parent.Tell(new ProcessProtocol.ProcessIdle(_id, Self, _handled, ExitCode is not null || _gone));
        }
    }

    protected override void PreStart()
    {
        // a pea an earlier gardend started: its exit is watched here from the start
        if (_pea is { Adopted: true }) WatchPeaExit();
        base.PreStart();
    }

    /// <summary>Asks the pea's agent every second until its process has exited (or the agent is gone): nobody else sees
    /// a detached pea's exit. Stops with the actor.</summary>
    private void WatchPeaExit()
    {
        var (agentTask, id, self, ct) = (_agent, _id, Self, _stopping.Token);
        Task.Run(async () =>
        {
            var agent = await agentTask.ConfigureAwait(false);
            var unanswered = 0;
            while (!ct.IsCancellationRequested)
            {
                try
                {
                    var entry = (await agent.ListAsync(ct).ConfigureAwait(false)).FirstOrDefault(p => p.Id == id);
                    unanswered = 0;
                    if (entry is null) { self.Tell(new ProcessProtocol.PeaExitPoll(null, Gone: true)); return; }
                    if (entry.Exited) { self.Tell(new ProcessProtocol.PeaExitPoll(entry.Exit?.ExitCode ?? 0, Gone: false)); return; }
                }
                catch (OperationCanceledException) { return; }
                catch (AgentUnavailableException) when (++unanswered < 3) { }
                catch (Exception) { self.Tell(new ProcessProtocol.PeaExitPoll(null, Gone: true)); return; }
                try { await Task.Delay(TimeSpan.FromSeconds(1), ct).ConfigureAwait(false); } catch (OperationCanceledException) { return; }
            }
        });
    }

    protected override void PostStop()
    {
        _stopping.Cancel();
        // A process actor that goes (its container is destroyed) releases the clients it counted.
        if (_attached > 0) Context.Parent.Tell(new ProcessProtocol.ClientsChanged(-_attached));
        base.PostStop();
    }

    /// <summary>Known once a stream or the container's exit watcher saw the exit; null while running or unknown.</summary>
    private int? ExitCode { get; set; }

    public static Props Props(IAgentClient agent, string handle, string id, Protocol.Agent.Exited? exitKnown = null,
        ProcessProtocol.PeaLink? pea = null) =>
        Akka.Actor.Props.CreateBy(new Producer(agent, handle, id, exitKnown, pea));

    /// <summary>Makes the actor by a plain constructor call: a Run makes one ProcessActor, and <c>Props.Create</c> of an
    /// expression evaluates the expression's arguments each time (measured with the rest of a Run's hops).</summary>
    private sealed class Producer(IAgentClient agent, string handle, string id, Protocol.Agent.Exited? exitKnown,
        ProcessProtocol.PeaLink? pea) : IIndirectActorProducer
    {
        public Type ActorType => typeof(ProcessActor);

        public ActorBase Produce() => new ProcessActor(agent, handle, id, exitKnown, pea);

        public void Release(ActorBase actor)
        {
        }
    }

    private void Start(ProcessProtocol.StartProcess msg)
    {
        var request = ToSpawnRequest(msg.Spec, msg.Detach);
        var self = Self;
        _inFlight++;
        _log.Info("process {0} starting: {1}", _id, msg.Spec.Path);
        // a pea is made first (its own root, its own agent: Kernel/PeaKernel), and the process spawned by its agent
        if (_pea is { Adopted: false } pea)
        {
            _agent = pea.Container is { } container
                ? Task.Run(() => pea.Peas.CreateAsync(msg.Spec, container))
                : Task.FromException<IAgentClient>(new GardenException(ErrorKind.FailedPrecondition,
                    $"container {_handle} has no spec to make a pea from (it is not created yet)"));
        }
        var agentTask = _agent;
        var isPea = _pea is not null;
        var clock = _sinceStart = System.Diagnostics.Stopwatch.StartNew();
        var (log, handle, id, detach) = (_log, _handle, _id, msg.Detach);
        // One async method, started here on the actor's thread: the connect and the Spawn's write happen now, and the
        // agent's answer is taken, turned into the reply and piped on the thread its read completes on. (It was a Task.Run
        // and two ContinueWith: three hand-offs to pool threads, each waking a sleeping one, on every Run's critical path:
        // bench/FINDINGS-run.md.) Nothing here touches the actor's state: it tells the actor what happened.
        StartAsync().PipeTo(msg.ReplyTo);

        async Task<object> StartAsync()
        {
            object result;
            try
            {
                var agent = await agentTask.ConfigureAwait(false);
                result = detach
                    ? Started(await agent.SpawnAsync(request, CancellationToken.None).ConfigureAwait(false), null)
                    : Started(null, await agent.SpawnAttachedAsync(request, CancellationToken.None).ConfigureAwait(false));
            }
            catch (Exception e)
            {
                result = Fail(e, handle, id);
            }
            // the stream (if any) has told this actor it is open before the client gets it
            bool ok = result is ProcessProtocol.ProcessStarted;
            // connect to the agent, send the spawn, the agent forks/execs and answers Spawned
            if (ok) log.Debug("run: agent spawn finished in {0:0.00} ms", clock.Elapsed.TotalMilliseconds);
            self.Tell(new ProcessProtocol.ProcessOpDone(Spawned: ok && !isPea, StartFailed: !ok, Attached: !detach));
            if (ok && isPea) self.Tell(PeaSpawned.Instance);
            return result;
        }

        object Started(Spawned? _, IAgentStream? stream) =>
            new ProcessProtocol.ProcessStarted(id, stream is null ? null : new ObservedStream(stream, self));
    }

    private void Attach(ContainerProtocol.AttachProcess msg)
    {
        var self = Self;
        _inFlight++;
        var (agentTask, id) = (_agent, _id);
        Task.Run(async () => await (await agentTask.ConfigureAwait(false)).AttachAsync(id, msg.FromOffset, CancellationToken.None).ConfigureAwait(false))
            .ContinueWith(t =>
            {
                object reply = t.IsCompletedSuccessfully ? new ProcessProtocol.ProcessAttached(Observe(t.Result, self)) : Fail(t.Exception!);
                // NotFound: the agent forgot it meanwhile; this actor has nothing left to do then
                bool forgotten = t.Exception?.GetBaseException() is AgentException { Code: ErrorCode.NotFound };
                self.Tell(new ProcessProtocol.ProcessOpDone(Spawned: false, StartFailed: forgotten));
                return reply;
            })
            .PipeTo(Sender);
    }

    private void Signal(ContainerProtocol.SignalProcess msg)
    {
        var (agentTask, id) = (_agent, _id);
        Task.Run(async () => await (await agentTask.ConfigureAwait(false)).SignalAsync(id, msg.Signal, CancellationToken.None).ConfigureAwait(false))
            .ContinueWith(t => t.IsCompletedSuccessfully ? HostProtocol.Done.Instance : Fail(t.Exception!))
            .PipeTo(Sender);
    }

    private IProcessStream Observe(IAgentStream stream, IActorRef self) => new ObservedStream(stream, self);

    private object Fail(AggregateException e) => Fail(e, _handle, _id);

    /// <summary>The reply for a failed operation (<paramref name="e"/> as thrown, or the AggregateException of a task).</summary>
    private static Status.Failure Fail(Exception e, string handle, string id) =>
        new(GardenErrors.From(e is AggregateException a ? a.GetBaseException() : e, handle, "process", id));

    internal static SpawnRequest ToSpawnRequest(ProcessSpec spec, bool detach)
    {
        var r = new SpawnRequest
        {
            Id = spec.Id,
            Path = spec.Path,
            Dir = spec.Dir,
            User = spec.User,
            Attach = !detach,
            KeepStdin = !detach,
        };
        r.Args.AddRange(spec.Args);
        r.Env.AddRange(spec.Env);
        foreach (var l in spec.Rlimits) r.Rlimits.Add(new Rlimit { Name = l.Name, Soft = l.Soft, Hard = l.Hard });
        if (spec.Tty is { } tty)
        {
            r.Tty = true;
            r.Rows = tty.Rows;
            r.Cols = tty.Cols;
        }
        return r;
    }
}
