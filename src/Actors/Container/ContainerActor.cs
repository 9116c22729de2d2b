using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Kernel;
using Garden.Actors.Process;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Garden.Protocol.Journal;
using Google.Protobuf;

namespace Garden.Actors.Container;

/// <summary>One container: a thin persistent shell over <see cref="ContainerState"/>. Each request is decided by
/// <see cref="ContainerState.Decide"/> (checked against <see cref="ContainerTransitions"/>); the shell journals the events,
/// applies them, runs the effect off its thread on the <see cref="ContainerKernel"/>, answers, and the effect's outcome is
/// decided on in turn. After a restart it recovers its journal and reconciles with the kernel before it serves. Its host
/// hears its lifecycle and properties (<see cref="ContainerChanged"/>, for List) after recovery and after each change,
/// before the change is answered.
/// Besides, it keeps what is not the container's journaled state: one ProcessActor child per process (and the watch for
/// the exits nobody follows), the grace timer (restarted by every request for it, paused while a client is attached to one
/// of its processes), and the pace of its OOM reports.</summary>
public sealed class ContainerActor : UntypedPersistentActor, IWithTimers
{
    private const string GraceTimer = "grace", ExitWatchTimer = "exit-watch", OomTimer = "oom";

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly GardenSettings _settings;
    private readonly ContainerKernel _kernel;
    private readonly IAgentClient _agent;
    private readonly ContainerLog _log;
    private readonly bool _fresh;
    private readonly ProcessRegistry _processes = new();
    private readonly OomThrottle _oom;
    private readonly IGardenMetrics _metrics;
    private ContainerState _state;
    private string? _quarantine;   // why its journal cannot be trusted (the first record it could not apply), or null
    private InFlight? _inFlight;   // the transition running in the kernel, and who waits for its outcome
    private IReadOnlyList<IActorRef> _awaitingPersist = [];
    private bool _awaitingReady;   // recovered: the host waits for ContainerReady or ContainerGone
    private bool _gone;
    private int _eventsSinceSnapshot;
    private int _clients;          // clients attached to its processes (Run and Attach streams open)
    private long _graceGeneration; // a grace timer message of an earlier start is stale (it may wait in the stash)
    private HostProtocol.ContainerChanged? _told; // what the host's List last heard of it

    private sealed record InFlight(Effect Effect, List<IActorRef> Waiters);

    /// <summary>An effect's outcome (<see cref="EffectDone"/> or <see cref="EffectFailed"/>) and who waits for it.</summary>
    private sealed record Finished(object Outcome, Effect Effect, List<IActorRef> Waiters);

    /// <summary>Processes started here whose exit no stream has reported yet are looked up in the agent now and then, so a
    /// detached process that nobody attaches to still gets its "process exited" event. One List at a time.</summary>
    private sealed record ExitWatchTick
    {
        public static readonly ExitWatchTick Instance = new();
    }

    /// <summary>A List (Wait false) or a wait for exits came back: Processes null when it failed; Refused: the agent does
    /// not know the wait (an earlier build); Cancelled: nothing was pending any more, or the container went.</summary>
    private sealed record ExitsSeen(IReadOnlyList<ProcessEntry>? Processes, IReadOnlyCollection<string> Asked, bool Wait = false,
        bool Refused = false, bool Cancelled = false);

    /// <summary>How long one wait for exits is held before it is asked again (an idle held connection costs a socket on
    /// each side and no buffer).</summary>
    private static readonly TimeSpan ExitWaitTime = TimeSpan.FromSeconds(60);

    private CancellationTokenSource? _exitWait; // the wait for exits in flight
    private sealed record RunningFound(IReadOnlyList<string> Ids);
    private sealed record AttachResolved(ContainerProtocol.AttachProcess Request, ProcessEntry? Entry, IActorRef ReplyTo);

    /// <param name="runtimeName">the name its kernel objects go by when it is not the handle (taken from the warm pool)</param>
    public ContainerActor(string handle, long incarnation, bool fresh, GardenSettings settings, ContainerEffects effects,
        string? quarantine = null, string? runtimeName = null)
    {
        _settings = settings;
        _fresh = fresh;
        _quarantine = quarantine;
        _log = ContainerLog.For(Context.System, handle);
        // A handle that is not a valid name (an earlier build's journal) never names a host path: nothing was made for it.
        var name = runtimeName ?? (Names.Problem(handle) is null ? handle : Names.ActorName(handle));
        var paths = ContainerPaths.For(settings, name);
        _agent = effects.Agents.Connect(paths.AgentSocket);
        var self = Self;
        _kernel = new ContainerKernel(new KernelContext(handle, paths, effects, _agent, settings, _log) { Name = runtimeName ?? handle },
            () => self.Tell(ContainerProtocol.OomKilled.Instance));
        _oom = new OomThrottle(settings.OomEventInterval);
        _metrics = effects.Metered;
        _state = ContainerState.Empty(handle) with
        {
            Defaults = new ContainerDefaults(paths.Rootfs.MountPoint, settings.DefaultRlimits)
            {
                MountPointByHandle = name != handle && Names.Problem(handle) is null ? Path.Combine(settings.MountDirFor(handle), "rootfs") : null,
            },
        };
        PersistenceId = HostState.PersistenceIdOf(handle, incarnation);
    }

    public static Props Props(string handle, long incarnation, bool fresh, GardenSettings settings, ContainerEffects effects,
        string? quarantine = null, string? runtimeName = null) =>
        Akka.Actor.Props.Create(() => new ContainerActor(handle, incarnation, fresh, settings, effects, quarantine, runtimeName));

    public override string PersistenceId { get; }

    /// <summary>A fresh incarnation has an empty journal by construction: skip the replay queries (a Create stays fast).</summary>
    public override Recovery Recovery => _fresh ? Recovery.None : base.Recovery;

    private string Handle => _state.Handle;

    private ContainerPhase Phase =>
        _gone ? ContainerPhase.Gone
        : _inFlight?.Effect is Effect.Reconcile ? ContainerPhase.Recovering
        : _inFlight?.Effect is Effect.SettleCreate ? ContainerPhase.Creating // journaled as made, not answered yet
        : _inFlight?.Effect.Holds == true ? ContainerPhase.Changing
        : _state.Phase;

    // ---- recovery ----

    protected override void OnRecover(object message)
    {
        switch (message)
        {
            case SnapshotOffer offer: Fold(offer.Snapshot); break;
            case RecoveryCompleted: OnRecovered(); break;
            default: Fold(message); break;
        }
    }

    /// <summary>Applies one recovered record; one that cannot be applied (unreadable, unknown, or it throws) is skipped
    /// and quarantines the container, and the records after it are still applied (a later "broken" among them).</summary>
    private void Fold(object record)
    {
        try
        {
            _state = record switch
            {
                UnreadableRecord u => throw new InvalidDataException(u.Reason),
                IMessage m => _state.Apply(m),
                _ => throw new InvalidDataException($"a {record.GetType().Name} is not a journal record"),
            };
        }
        catch (Exception e)
        {
            var what = record is IMessage m and not UnreadableRecord ? $" ({m.Descriptor.Name})" : "";
            var reason = $"journal record {LastSequenceNr}{what} cannot be applied: {e.Message}";
            _log.Error(null, "{0}", reason);
            _quarantine ??= reason;
        }
    }

    private void OnRecovered()
    {
        TellHost();
        if (_fresh) return; // new: it waits for its Create
        if (Names.Problem(Handle) is { } badName)
            _quarantine = $"handle {Names.Quote(Handle)} {badName} (an earlier gardend accepted it)";
        _awaitingReady = true;
        Execute(_state.Recover(_quarantine), []);
    }

    // ---- the shell: decide, journal, apply, run, answer ----

    protected override void OnCommand(object message)
    {
        switch (message)
        {
            case Finished f:
                if (ReferenceEquals(_inFlight?.Effect, f.Effect)) _inFlight = null;
                Execute(_state.Decide(Phase, f.Outcome, DateTimeOffset.UtcNow), f.Waiters);
                break;
            case SaveSnapshotSuccess s: DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)); break;
            case SaveSnapshotFailure f: _log.Warning("snapshot failed: {0}", f.Cause.Message); break;
            case DeleteSnapshotsSuccess or DeleteSnapshotsFailure: break;
            case ProcessProtocol.ProcessSpawned s when WatchesExits: WatchExit(s.ProcessId); break;
            case ProcessProtocol.ProcessSpawned: break;
            case ProcessProtocol.PeaGone g: Context.Parent.Tell(new HostProtocol.PeaChanged(Handle, g.ProcessId, Running: false)); break;
            case ProcessProtocol.ProcessIdle i:
                if (_processes.Idle(i.ProcessId, i.Actor, i.Handled, i.ExitKnown)) Context.Stop(i.Actor);
                if (_processes.Pending == 0) _exitWait?.Cancel(); // no connection held for nothing
                break;
            case RunningFound r when WatchesExits:
                foreach (var id in r.Ids) WatchExit(id);
                break;
            case RunningFound: break;
            case ExitWatchTick: ExitWatch(); break;
            case ExitsSeen e: OnExitsSeen(e); break;
            case AttachResolved a: OnAttachResolved(a); break;
            case Terminated t: _processes.Forget(t.ActorRef); break;
            case IContainerCommand or ContainerProtocol.OomKilled or ContainerProtocol.OomFlush or ContainerProtocol.GraceTimeUp or HostProtocol.CreateContainer:
                Execute(_state.Decide(Phase, message, DateTimeOffset.UtcNow), Sender.IsNobody() ? [] : [Sender]);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>Carries out a decision for <paramref name="askers"/> (who asked, or who waited for the outcome decided).</summary>
    private void Execute(Decision d, IReadOnlyList<IActorRef> askers)
    {
        if (d.Stash)
        {
            Stash.Stash();
            return;
        }
        if (d.Forward is { } command)
        {
            HandOn(command, askers.Count > 0 ? askers[0] : ActorRefs.Nobody);
            return;
        }
        if (d.Await && d.Effect is null)
        {
            _inFlight?.Waiters.AddRange(askers); // joins the transition in flight (a second Destroy)
            return;
        }
        var before = Phase;
        var (lifecycle, grace) = (_state.Lifecycle, _state.GraceTime);
        void Then()
        {
            TellHost(); // before any answer: a List right after it sees the change
            foreach (var note in d.Notes) _log.Write(note);
            foreach (var (kind, detail) in d.Publish) Context.System.EventStream.Publish(EventsProtocol.ContainerEvent.Now(Handle, kind, detail));
            if (d.Effect is { } effect && !d.EffectBeside) Run(effect, d.Await ? [.. askers] : []);
            Settle(before, lifecycle, grace); // the host hears first (a container gone is released before its last answer is out)
            if (!d.Await && (d.Error is not null ? new Status.Failure(d.Error) : d.Reply) is { } answer)
                foreach (var asker in askers) asker.Tell(answer);
        }
        if (d.EffectBeside && d.Effect is { } beside) Run(beside, d.Await ? [.. askers] : []);
        if (d.Events.IsEmpty)
        {
            Then();
            return;
        }
        _awaitingPersist = askers;
        var left = d.Events.Length;
        var journaling = System.Diagnostics.Stopwatch.GetTimestamp(); // for the debug line of the bench's breakdown
        PersistAll(d.Events, e =>
        {
            _metrics.Journaled("container", 1);
            _state = _state.Apply(e);
            if (++_eventsSinceSnapshot >= _settings.SnapshotEvery)
            {
                _eventsSinceSnapshot = 0;
                SaveSnapshot(_state.ToSnapshot());
            }
            if (--left > 0) return;
            _awaitingPersist = [];
            _log.Debug("journal {0} finished in {1:0.0} ms", d.Events[0].GetType().Name,
                System.Diagnostics.Stopwatch.GetElapsedTime(journaling).TotalMilliseconds);
            Then();
        });
    }

    /// <summary>Runs an effect on the kernel, off the actor thread; its outcome comes back as a <see cref="Finished"/>.</summary>
    private void Run(Effect effect, List<IActorRef> waiters)
    {
        if (effect.Transition) _inFlight = new InFlight(effect, waiters);
        var kernel = _kernel;
        Task.Run(() => kernel.RunAsync(effect))
            .ContinueWith(t => new Finished(t.IsCompletedSuccessfully ? new EffectDone(effect, t.Result) : new EffectFailed(effect, t.Exception!.GetBaseException()),
                effect, waiters))
            .PipeTo(Self);
    }

    /// <summary>What follows from the phase a decision left the container in.</summary>
    private void Settle(ContainerPhase before, ContainerLifecycle lifecycle, TimeSpan grace)
    {
        if (_gone)
        {
            Stash.UnstashAll();
            return;
        }
        if (_state.Lifecycle != lifecycle || _state.GraceTime != grace) RestartGraceTimer();
        var now = Phase;
        if (now is ContainerPhase.Destroying or ContainerPhase.Broken)
        {
            // its processes go with it
            Timers.Cancel(ExitWatchTimer);
            _exitWait?.Cancel();
        }
        if (now == ContainerPhase.Gone || (_awaitingReady && now == ContainerPhase.New))
        {
            // nothing left: the host releases the handle and stops this actor
            _gone = true;
            _awaitingReady = false;
            Timers.CancelAll();
            Context.Parent.Tell(new HostProtocol.ContainerGone(Handle));
        }
        else if (now is not (ContainerPhase.Recovering or ContainerPhase.Destroying)
                 && (_awaitingReady || (before == ContainerPhase.Destroying && now == ContainerPhase.Broken)))
        {
            var healthy = _state.Lifecycle != ContainerLifecycle.Broken;
            _awaitingReady = false;
            RestartGraceTimer(); // after a restart the grace time starts afresh
            if (healthy && _state.Lifecycle is ContainerLifecycle.Active or ContainerLifecycle.Stopped) WatchRunningProcesses();
            Context.Parent.Tell(new HostProtocol.ContainerReady(Handle, healthy)); // a recovering host stops waiting for it
        }
        Stash.UnstashAll(); // the table decides again what waits
    }

    /// <summary>Tells the host what its List shows of this container (<see cref="ContainerChanged"/>), when that changed.</summary>
    private void TellHost()
    {
        if (_told is { } t && t.Lifecycle == _state.Lifecycle && t.Properties == _state.Properties) return;
        _told = new HostProtocol.ContainerChanged(Handle, _state.Lifecycle, _state.Properties);
        Context.Parent.Tell(_told);
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "journal write failed for {0}; the actor stops and recovers from its journal", @event.GetType().Name);
        var failure = new Status.Failure(new GardenException(ErrorKind.Internal,
            $"container {Handle}: journal write failed ({cause.Message}); the change was not made"));
        foreach (var asker in _awaitingPersist.Concat(_inFlight?.Waiters ?? [])) asker.Tell(failure);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "journal rejected {0}", @event.GetType().Name);
        var failure = new Status.Failure(new GardenException(ErrorKind.Internal, $"journal rejected the change: {cause.Message}"));
        foreach (var asker in _awaitingPersist) asker.Tell(failure);
        _awaitingPersist = [];
        base.OnPersistRejected(cause, @event, sequenceNr);
        // its kernel work started beside the record: the actor stops, and the host recovers it from its journal (no
        // CreateStarted in it), which undoes whatever that work made, once it has ended (CreatesInFlight)
        if (@event is CreateStarted) Context.Stop(Self);
    }

    protected override void PostStop()
    {
        var kernel = _kernel;
        _ = Task.Run(kernel.StopWatchingAsync);
        _exitWait?.Cancel();
        base.PostStop();
    }

    // ---- grace time ----

    /// <summary>Sees every message first: a request for this container restarts its grace timer, clients coming and
    /// going pause and restart it, and a grace timer that fires while the container is not idle starts again.</summary>
    protected override bool AroundReceive(Receive receive, object message)
    {
        switch (message)
        {
            case IContainerCommand:
                RestartGraceTimer();
                break;
            case ProcessProtocol.ClientsChanged c:
                _clients = Math.Max(0, _clients + c.Delta);
                RestartGraceTimer();
                return true;
            case ContainerProtocol.GraceTimeUp up when up.Generation != _graceGeneration:
                return true; // stale: restarted since
            case ContainerProtocol.GraceTimeUp when _clients > 0 || Phase is ContainerPhase.Changing or ContainerPhase.Stopping:
                RestartGraceTimer();
                return true;
        }
        return base.AroundReceive(receive, message);
    }

    /// <summary>Starts the grace timer afresh (cancels it while clients are attached, when the grace time is zero, or
    /// when the container is not serving).</summary>
    private void RestartGraceTimer()
    {
        _graceGeneration++;
        var serving = _state.Lifecycle is ContainerLifecycle.Active or ContainerLifecycle.Stopped or ContainerLifecycle.Stopping
            or ContainerLifecycle.Broken;
        if (_state.GraceTime <= TimeSpan.Zero || _clients > 0 || !serving || _state.Spec is null || _gone || _awaitingReady)
        {
            Timers.Cancel(GraceTimer);
            return;
        }
        Timers.StartSingleTimer(GraceTimer, new ContainerProtocol.GraceTimeUp(_graceGeneration), _state.GraceTime);
    }

    // ---- the process side and the OOM reports (handed on by Decide) ----

    private bool WatchesExits => Phase is ContainerPhase.Active or ContainerPhase.Changing or ContainerPhase.Stopping or ContainerPhase.Stopped;

    private void HandOn(object command, IActorRef asker)
    {
        switch (command)
        {
            case ContainerProtocol.RunProcess run:
                if (_processes.Find(run.Spec.Id) is not null)
                {
                    asker.Tell(new Status.Failure(new GardenException(ErrorKind.AlreadyExists, $"process {run.Spec.Id} already exists in container {Handle}")));
                    return;
                }
                // a pea (its own root) gets a ProcessActor that makes it first (Kernel/PeaKernel)
                NewProcessActor(run.Spec.Id, pea: run.Spec.IsPea ? new ProcessProtocol.PeaLink(_kernel.Peas, _state.Spec, Adopted: false) : null);
                if (run.Spec.IsPea) Context.Parent.Tell(new HostProtocol.PeaChanged(Handle, run.Spec.Id, Running: true));
                // the actor reports ProcessSpawned once the agent runs it, and the exit watcher takes it from there
                _processes.Send(run.Spec.Id, new ProcessProtocol.StartProcess(run.Spec, run.Detach, asker), asker);
                return;
            case ContainerProtocol.AttachProcess attach:
                if (_processes.Send(attach.ProcessId, attach, asker)) return;
                // A process with no actor here (an earlier daemon's, or one that is done): ask the agent, which keeps recent exits.
                var self = Self;
                var handle = Handle;
                Task.Run(() => _agent.ListAsync(CancellationToken.None)).ContinueWith(t =>
                {
                    if (t.IsCompletedSuccessfully) self.Tell(new AttachResolved(attach, t.Result.FirstOrDefault(p => p.Id == attach.ProcessId), asker));
                    else asker.Tell(new Status.Failure(GardenErrors.From(t.Exception!.GetBaseException(), handle, "attach", attach.ProcessId)));
                });
                return;
            case ContainerProtocol.SignalProcess signal:
                if (_processes.Send(signal.ProcessId, signal, asker)) return;
                AskAgent(() => _agent.SignalAsync(signal.ProcessId, signal.Signal, CancellationToken.None), asker, "signal", signal.ProcessId);
                return;
            case ContainerProtocol.SetProcessTty tty:
                if (_processes.Send(tty.ProcessId, tty, asker)) return; // its actor knows its agent (a pea's is not the container's)
                AskAgent(() => _agent.SetTtyAsync(tty.ProcessId, tty.Size.Rows, tty.Size.Cols, CancellationToken.None), asker, "terminal resize", tty.ProcessId);
                return;
            case ContainerProtocol.OomKilled:
                _metrics.OomKilled(Handle);
                // paced on the ActorSystem's clock, the one its timers run on (virtual in the actor tests)
                var (report, wait) = _oom.Killed(Context.System.Scheduler.Now.UtcDateTime, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                if (report is { } now) Run(new Effect.CountOomKills(now.Kills, now.AtUnixMs), []);
                else if (wait is { } until) Timers.StartSingleTimer(OomTimer, ContainerProtocol.OomFlush.Instance, until);
                return;
            case ContainerProtocol.OomFlush:
                if (_oom.Due(Context.System.Scheduler.Now.UtcDateTime) is { } due) Run(new Effect.CountOomKills(due.Kills, due.AtUnixMs), []);
                return;
        }
    }

    private void AskAgent(Func<Task> call, IActorRef asker, string operation, string processId)
    {
        var handle = Handle;
        Task.Run(call).ContinueWith(t => t.IsCompletedSuccessfully ? (object)HostProtocol.Done.Instance
                : new Status.Failure(GardenErrors.From(t.Exception!.GetBaseException(), handle, operation, processId)))
            .PipeTo(asker);
    }

    /// <summary>A new ProcessActor for id (exitKnown: it exited and its exit was published before).</summary>
    private void NewProcessActor(string id, Exited? exitKnown = null, ProcessProtocol.PeaLink? pea = null) =>
        _processes.Add(id, Context.Watch(Context.ActorOf(ProcessActor.Props(_agent, Handle, id, exitKnown, pea), _processes.NameFor(id))));

    /// <summary>A ProcessActor that throws is stopped, not restarted in place: its counts of clients and of messages would
    /// be wrong. Its process lives on in the agent; the next request for it gets a new actor (see <see cref="ProcessRegistry.Forget"/>).</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        _log.Error(e, "a process actor failed: {0}", e.Message);
        return Directive.Stop;
    });

    private void OnAttachResolved(AttachResolved msg)
    {
        switch (ContainerTransitions.Check(Phase, CommandKind.Process))
        {
            case Verdict.Allow: break;
            case Verdict.Stash:
                Stash.Stash();
                return;
            case var refused:
                msg.ReplyTo.Tell(new Status.Failure(ContainerTransitions.Refusal(refused, _state)));
                return;
        }
        var id = msg.Request.ProcessId;
        if (msg.Entry is null)
        {
            msg.ReplyTo.Tell(new Status.Failure(GardenException.UnknownProcess(Handle, id)));
            return;
        }
        // A recent exit of the agent whose exit was published already (its actor has gone) is not published again; one
        // the exit watcher still waits for is published by the actor made here when the watcher tells it.
        if (_processes.Find(id) is null)
            NewProcessActor(id, msg.Entry.Exited && !_processes.IsPending(id) ? msg.Entry.Exit ?? new Exited() : null);
        _processes.Send(id, msg.Request, msg.ReplyTo);
    }

    /// <summary>After a restart: the processes an earlier daemon started and that still run get their exit events too, and
    /// so do those that exited while no daemon ran (the agent says nobody has seen their exit).</summary>
    private void WatchRunningProcesses()
    {
        // the peas an earlier gardend started (their files say which): each gets its actor, which watches its exit and
        // releases it (at once when its agent is gone)
        foreach (var id in _kernel.Peas.Existing())
            if (_processes.Find(id) is null)
            {
                _log.Info("pea {0}: found after a restart", id);
                NewProcessActor(id, pea: new ProcessProtocol.PeaLink(_kernel.Peas, _state.Spec, Adopted: true));
                Context.Parent.Tell(new HostProtocol.PeaChanged(Handle, id, Running: true));
            }
        var self = Self;
        Task.Run(() => _agent.ListAsync(CancellationToken.None)).ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully) self.Tell(new RunningFound([.. t.Result.Where(p => !p.Exited || !p.ExitReported).Select(p => p.Id)]));
        });
    }

    private void WatchExit(string id)
    {
        _processes.Watch(id);
        LookForExits();
    }

    /// <summary>While an exit is pending: one wait for exits held at the agent, answered at the first exit; with an agent
    /// that cannot wait (an earlier build), or after a wait failed, the List poll every second (after a failed wait, the
    /// poll's first answered List goes back to waiting).</summary>
    private void LookForExits()
    {
        if (_processes.Pending == 0 || !WatchesExits)
        {
            Timers.Cancel(ExitWatchTimer);
            return;
        }
        if (_processes.WaitsRefused || Timers.IsTimerActive(ExitWatchTimer))
        {
            if (!Timers.IsTimerActive(ExitWatchTimer))
                Timers.StartPeriodicTimer(ExitWatchTimer, ExitWatchTick.Instance, TimeSpan.FromSeconds(1));
            return;
        }
        if (_processes.StartList() is not { } asked) return;
        var cancel = _exitWait = new CancellationTokenSource();
        Task.Run(() => _agent.WaitExitsAsync(ExitWaitTime, cancel.Token))
            .ContinueWith(t => new ExitsSeen(t.IsCompletedSuccessfully ? t.Result : null, asked, Wait: true,
                Refused: t.Exception?.InnerException is AgentException { Code: ErrorCode.Invalid },
                Cancelled: cancel.IsCancellationRequested))
            .PipeTo(Self);
    }

    private void ExitWatch()
    {
        if (_processes.Pending == 0 || !WatchesExits)
        {
            Timers.Cancel(ExitWatchTimer);
            return;
        }
        // at most one List in flight: an agent slower than the tick (or frozen) is not asked again meanwhile
        if (_processes.StartList() is not { } asked) return;
        Task.Run(() => _agent.ListAsync(CancellationToken.None))
            .ContinueWith(t => new ExitsSeen(t.IsCompletedSuccessfully ? t.Result : null, asked))
            .PipeTo(Self);
    }

    private void OnExitsSeen(ExitsSeen msg)
    {
        foreach (var f in _processes.Listed(msg.Processes, msg.Asked))
        {
            if (f.Actor is not null)
                _processes.Send(f.Id, f.Gone ? ProcessProtocol.ProcessGone.Instance : new ProcessProtocol.ProcessExitSeen(f.Exit!.ExitCode, f.Exit.Signal), Self);
            else if (f.Gone)
                _log.Warning("process {0}: the agent forgot it before its exit was seen here", f.Id);
            else
            {
                // a process of an earlier daemon, or one whose actor is gone: its exit needs no actor to be told
                _log.Info("process {0} exited with {1}", f.Id, f.Exit!.ExitCode);
                Context.System.EventStream.Publish(new EventsProtocol.ContainerEvent(Handle, EventsProtocol.ContainerEvent.ProcessExited, DateTimeOffset.UtcNow, f.Id, f.Exit.ExitCode));
            }
        }
        if (msg.Wait)
        {
            _exitWait?.Dispose();
            _exitWait = null;
            if (!msg.Cancelled)
            {
                bool answered = msg.Processes is not null;
                _processes.WaitEnded(answered, msg.Refused);
                if (msg.Refused) _log.Info("the agent cannot wait for exits (an earlier build): its processes are polled");
                else if (!answered && WatchesExits && _processes.Pending > 0)
                    // the agent went or did not answer: poll (a second's backoff), back to waiting at the first List answered
                    Timers.StartPeriodicTimer(ExitWatchTimer, ExitWatchTick.Instance, TimeSpan.FromSeconds(1));
            }
            LookForExits();
        }
        else if (msg.Processes is not null && !_processes.WaitsRefused)
        {
            // a List answered after a failed wait: wait again
            Timers.Cancel(ExitWatchTimer);
            LookForExits();
        }
    }
}
