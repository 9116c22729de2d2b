using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Disk;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;
using Garden.Protocol.Agent;
using Garden.Protocol.Journal;
using Google.Protobuf;
using static Garden.Actors.Host.HostProtocol;

namespace Garden.Actors.Container;

/// <summary>One container: a persistent shell over <see cref="ContainerState"/>. Its lifecycle is a state machine
/// (Creating → Active ⇄ Stopping → Stopped → Destroying, or Broken); every change is journaled before it is
/// acknowledged. After a restart it recovers its journal and reconciles with the kernel before it serves.
/// Linux work runs off the actor thread and comes back as messages. One ProcessActor child per process.
/// Grace time: the container owns its idle timer; every request for it restarts the timer, and it pauses while any client
/// is attached to one of its processes (counted by the ProcessActors). When it fires, the container destroys itself.</summary>
public sealed class ContainerActor : ReceivePersistentActor, IWithTimers
{
    private const string GraceTimer = "grace";

    public ITimerScheduler Timers { get; set; } = null!;

    private readonly GardenSettings _settings;
    private readonly ContainerEffects _fx;
    private readonly ContainerPaths _paths;
    private readonly IAgentClient _agent;
    private readonly bool _fresh;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<IActorRef> _destroyWaiters = [];
    private ContainerState _state;
    private IActorRef? _awaitingPersist;
    private int _eventsSinceSnapshot;
    private IDisposable? _oomWatch;
    private int _clients;          // clients attached to this container's processes (Run and Attach streams open)
    private long _graceGeneration; // the grace timer message of an earlier start is stale (it may wait in the stash)
    private bool _changing;        // a limit or firewall change is in flight: the container is not idle

    public ContainerActor(string handle, long incarnation, bool fresh, GardenSettings settings, ContainerEffects effects,
        string? quarantine = null)
    {
        _settings = settings;
        _fx = effects;
        _fresh = fresh;
        _quarantine = quarantine;
        _state = ContainerState.Empty(handle);
        // A handle that is not a valid name (an earlier build's journal) never names a host path: nothing was made for it.
        _paths = ContainerPaths.For(settings, Names.Problem(handle) is null ? handle : Names.ActorName(handle));
        _agent = effects.Agents.Connect(_paths.AgentSocket);
        PersistenceId = HostState.PersistenceIdOf(handle, incarnation);

        Recover<SnapshotOffer>(o => Fold(o.Snapshot));
        Recover<IJournalRecord>(Fold);
        Recover<RecoveryCompleted>(_ => OnRecovered());
    }

    /// <summary>Why this container cannot be trusted to its journal (the first record it could not apply, or a host
    /// record about it), or null. Such a container starts broken, with the reason in its events: it can be destroyed.</summary>
    private string? _quarantine;

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
            _log.Error("[{0}] {1}", Handle, reason);
            _quarantine ??= reason;
        }
    }

    public override string PersistenceId { get; }

    /// <summary>A fresh incarnation has an empty journal by construction: skip the replay queries (a Create stays fast).</summary>
    public override Recovery Recovery => _fresh ? Recovery.None : base.Recovery;

    public static Props Props(string handle, long incarnation, bool fresh, GardenSettings settings, ContainerEffects effects,
        string? quarantine = null) =>
        Akka.Actor.Props.Create(() => new ContainerActor(handle, incarnation, fresh, settings, effects, quarantine));

    private string Handle => _state.Handle;

    // ---- messages private to this actor ----
    private sealed record CreateFinished(string Rootfs, IActorRef ReplyTo);
    private sealed record LimitsApplied(Limits InForce, IActorRef ReplyTo);
    private sealed record LimitsFailed(Exception Error, IActorRef ReplyTo);
    private sealed record OomKilled
    {
        public static readonly OomKilled Instance = new();
    }
    private sealed record CreateFailed(Exception Error, IActorRef ReplyTo);
    private sealed record StopFinished(IActorRef? ReplyTo);
    private sealed record DestroyFinished(Exception? Error);
    private sealed record InfoReady(ImmutableArray<string> ProcessIds, Exception? AgentError, IActorRef ReplyTo);
    private sealed record AttachResolved(AttachProcess Request, ProcessEntry? Entry, IActorRef ReplyTo);
    private sealed record ReconcileFinished(KernelFindings Findings);
    private sealed record NetworkChanged(IJournalRecord Event, object Reply, IActorRef ReplyTo);
    private sealed record NetworkChangeFailed(Exception Error, IActorRef ReplyTo);
    private sealed record GraceTimeUp(long Generation);

    /// <summary>Processes started here whose exit no stream has reported yet are looked up in the agent now and then, so a
    /// detached process that nobody attaches to still gets its "process exited" event. One List at a time.</summary>
    private sealed record ExitWatchTick
    {
        public static readonly ExitWatchTick Instance = new();
    }
    private sealed record ExitsSeen(IReadOnlyList<ProcessEntry>? Processes, IReadOnlyCollection<string> Asked);
    private const string ExitWatchTimer = "exit-watch";
    private readonly ProcessRegistry _processes = new();
    private IAsyncDisposable? _agentLog; // follows the agent's log into depot/<handle>/agent.log

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
            case ClientsChanged c:
                _clients = Math.Max(0, _clients + c.Delta);
                RestartGraceTimer();
                return true;
            case GraceTimeUp up when up.Generation != _graceGeneration:
                return true; // stale: restarted since
            case GraceTimeUp when _clients > 0 || _changing || _state.Lifecycle == ContainerLifecycle.Stopping:
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
        if (_state.GraceTime <= TimeSpan.Zero || _clients > 0 || !serving || _state.Spec is null)
        {
            Timers.Cancel(GraceTimer);
            return;
        }
        Timers.StartSingleTimer(GraceTimer, new GraceTimeUp(_graceGeneration), _state.GraceTime);
    }

    /// <summary>Idle for its whole grace time: destroyed like a Destroy request, with the reason in its events.</summary>
    private void Reap(GraceTimeUp _)
    {
        _log.Info("[{0}] reaped: idle for its grace time ({1})", Handle, _state.GraceTime);
        Journal(ContainerState.Changed(ContainerLifecycle.Destroying, ContainerEvent.Reaped), null, () =>
        {
            Publish(ContainerEvent.Reaped);
            StartDestroy(graceful: true);
        });
    }

    private void Publish(string kind, string detail = "") => Context.System.EventStream.Publish(ContainerEvent.Now(Handle, kind, detail));

    // ---- journal ----

    /// <summary>Stores the event, applies it, then acknowledges (replies happen in <paramref name="then"/>).</summary>
    private void Journal(IJournalRecord evt, IActorRef? replyTo, Action then)
    {
        _awaitingPersist = replyTo;
        Persist(evt, e =>
        {
            _awaitingPersist = null;
            _state = _state.Apply(e);
            TellHost();
            if (++_eventsSinceSnapshot >= _settings.SnapshotEvery)
            {
                _eventsSinceSnapshot = 0;
                SaveSnapshot(_state.ToSnapshot());
            }
            then();
        });
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "[{0}] journal write failed for {1}; the actor stops and recovers from its journal", Handle, @event.GetType().Name);
        _awaitingPersist?.Tell(new Status.Failure(new GardenException(ErrorKind.Internal,
            $"container {Handle}: journal write failed ({cause.Message}); the change was not made")));
        foreach (var w in _destroyWaiters) w.Tell(new Status.Failure(new GardenException(ErrorKind.Internal, $"journal write failed: {cause.Message}")));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "[{0}] journal rejected {1}", Handle, @event.GetType().Name);
        _awaitingPersist?.Tell(new Status.Failure(new GardenException(ErrorKind.Internal, $"journal rejected the change: {cause.Message}")));
        _awaitingPersist = null;
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    private void Snapshots()
    {
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("[{0}] snapshot failed: {1}", Handle, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    // ---- recovery ----

    private void OnRecovered()
    {
        TellHost();
        if (_fresh)
        {
            Become(Initial);
            return;
        }
        if (Names.Problem(Handle) is { } badName)
            _quarantine = $"handle {Names.Quote(Handle)} {badName} (an earlier gardend accepted it)";
        if (_quarantine is not null)
        {
            Quarantine($"{_quarantine}; destroy it");
            return;
        }
        switch (_state.PlanRecovery())
        {
            case RecoveryPlan.Release:
                _log.Info("[{0}] recovered: nothing to keep", Handle);
                BecomeGone();
                break;
            case RecoveryPlan.Undo:
                _log.Info("[{0}] recovered mid-{1}: releasing everything", Handle, _state.Lifecycle == ContainerLifecycle.Creating ? "create" : "destroy");
                Journal(ContainerState.Changed(ContainerLifecycle.Destroying), null, () => StartDestroy(graceful: false));
                break;
            default:
                _log.Info("[{0}] recovered ({1}): reconciling with the kernel", Handle, ContainerState.Describe(_state.Lifecycle));
                if (_state.Spec is { EarlierHostRoot: true })
                    _log.Warning("[{0}] made by a build before user namespaces: it keeps running as host root until it is destroyed", Handle);
                ReconcileAsync().ContinueWith(t =>
                {
                    if (t.IsCompletedSuccessfully) return t.Result;
                    _log.Error(t.Exception!.GetBaseException(), "[{0}] reconcile could not read the kernel's state", Handle);
                    return new KernelFindings(false, false, false, false, false);
                }).ContinueWith(t => new ReconcileFinished(t.Result)).PipeTo(Self);
                Become(Reconciling);
                break;
        }
    }

    /// <summary>A container this daemon cannot trust to its journal: no reconcile, no kernel work; broken with the reason
    /// (journaled once: a restart that finds the same reason adds nothing), until it is destroyed.</summary>
    private void Quarantine(string reason)
    {
        _log.Error("[{0}] broken: {1}", Handle, reason);
        Publish(ContainerEvent.Broken, reason);
        if (_state.Lifecycle == ContainerLifecycle.Broken && _state.Events.Contains(reason))
        {
            Ready(healthy: false);
            return;
        }
        Journal(ContainerState.Changed(ContainerLifecycle.Broken, reason), null, () => Ready(healthy: false));
    }

    private void Reconciling()
    {
        Snapshots();
        Command<ReconcileFinished>(msg =>
        {
            var problem = ContainerState.Diagnose(msg.Findings);
            if (problem is not null)
            {
                _log.Warning("[{0}] reconcile: {1}", Handle, problem);
                var found = new Reconciled
                {
                    Healthy = false, Finding = problem, DaemonVersion = HostActor.Version, AtUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
                };
                Journal(found, null, () =>
                {
                    Publish(ContainerEvent.Broken, problem);
                    if (_state.Lifecycle == ContainerLifecycle.Broken) Ready(healthy: false);
                    else Journal(ContainerState.Changed(ContainerLifecycle.Broken, problem), null, () => Ready(healthy: false));
                });
                return;
            }
            _log.Info("[{0}] reconcile: reattached", Handle);
            Publish(ContainerEvent.Reattached);
            if (_state.Lifecycle == ContainerLifecycle.Stopping)
            {
                WatchOom();
                FollowAgentLog();
                // died mid-stop: finish it (KILL whatever is left)
                StopProcessesAsync(TimeSpan.Zero).ContinueWith(_ => new StopFinished(null)).PipeTo(Self);
                Become(Stopping);
                RestartGraceTimer();
                Context.Parent.Tell(new ContainerReady(Handle));
                return;
            }
            Ready(healthy: _state.Lifecycle != ContainerLifecycle.Broken);
        });
        CommandAny(_ => Stash.Stash());
    }

    private void Ready(bool healthy)
    {
        if (healthy) WatchOom(); // re-armed after a restart
        Become(_state.Lifecycle switch
        {
            ContainerLifecycle.Active => Active,
            ContainerLifecycle.Stopped => Stopped,
            _ => Broken,
        });
        Stash.UnstashAll();
        RestartGraceTimer(); // after a restart the grace time starts afresh
        if (healthy)
        {
            FollowAgentLog();
            WatchRunningProcesses();
        }
        Context.Parent.Tell(new ContainerReady(Handle, healthy));
    }

    private async Task<KernelFindings> ReconcileAsync()
    {
        _fx.Runtime.Adopt(Handle, _paths.Bundle);
        var state = await _fx.Runtime.StateAsync(Handle, CancellationToken.None);
        var running = state is { Status: OciStatus.Running };
        var agent = false;
        if (running)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _agent.PingAsync(cts.Token);
                agent = true;
            }
            catch (Exception e) when (e is OperationCanceledException or AgentUnavailableException or AgentException)
            {
            }
        }
        var network = true;
        if (ContainerNetwork() is { } net)
        {
            network = _fx.Network.Exists(net);
            // The rules live in the kernel: put back whatever is missing (a crash, an operator's flush).
            if (network && await _fx.Firewall.EnsureAsync(Firewall(net, _state.NetIn, _state.NetOut), CancellationToken.None))
                _log.Warning("[{0}] reconcile: its firewall rules were missing or incomplete; re-applied", Handle);
        }
        return new KernelFindings(state is not null, running, _fx.Rootfs.IsMounted(RootfsMountPoint), agent, _fx.Cgroups.Exists(Handle), network);
    }

    /// <summary>Where its root is mounted: as journaled (builds before user namespaces mounted it in the depot).</summary>
    private string RootfsMountPoint => _state.Rootfs.Length > 0 ? _state.Rootfs : _paths.Rootfs.MountPoint;

    private ContainerNetwork? ContainerNetwork() =>
        _state.Network is { } a ? _settings.Network.For(Handle, a) : null;

    private static ContainerFirewall Firewall(ContainerNetwork net, IEnumerable<PortMapping> netIn, IEnumerable<NetOutRule> netOut) =>
        new(net, [.. netIn], [.. netOut]);

    // ---- states ----

    private void Initial()
    {
        Snapshots();
        Command<CreateContainer>(msg =>
        {
            var spec = msg.Spec;
            var replyTo = Sender;
            Journal(new CreateStarted { Spec = ContainerState.ToRecord(spec) }, replyTo, () =>
            {
                _log.Info("[{0}] create starting (rootfs {1})", Handle, spec.Rootfs);
                CreateAsync(spec).ContinueWith(t => t.IsCompletedSuccessfully
                        ? (object)new CreateFinished(t.Result, replyTo)
                        : new CreateFailed(t.Exception!.GetBaseException(), replyTo))
                    .PipeTo(Self);
                Become(Creating);
            });
        });
        CommandAny(_ => Sender.Tell(new Status.Failure(GardenException.UnknownHandle(Handle))));
    }

    private void Creating()
    {
        Snapshots();
        Command<CreateFinished>(msg => Journal(new CreateCompleted
        {
            RootfsMount = msg.Rootfs, CreatedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
        }, msg.ReplyTo, () =>
        {
            WatchOom();
            FollowAgentLog();
            _log.Info("[{0}] create finished", Handle);
            msg.ReplyTo.Tell(new ContainerCreated(Handle));
            Publish(ContainerEvent.Created);
            Become(Active);
            RestartGraceTimer();
            Stash.UnstashAll();
        }));
        Command<CreateFailed>(msg =>
        {
            _log.Warning("[{0}] create failed: {1}", Handle, msg.Error.Message);
            Journal(ContainerState.Changed(ContainerLifecycle.Destroyed), msg.ReplyTo, () =>
            {
                msg.ReplyTo.Tell(new Status.Failure(ToCreateError(msg.Error)));
                BecomeGone();
            });
        });
        CommandAny(_ => Stash.Stash());
    }

    private void Active()
    {
        Queries();
        LimitCommands();
        NetworkCommands();
        Command<RunProcess>(Run);
        ProcessCommands();
        Command<StopContainer>(msg =>
        {
            var replyTo = Sender;
            Journal(ContainerState.Changed(ContainerLifecycle.Stopping), replyTo, () =>
            {
                _log.Info("[{0}] stop starting (kill={1})", Handle, msg.Kill);
                StopProcessesAsync(msg.Kill ? TimeSpan.Zero : _settings.StopGrace)
                    .ContinueWith(_ => new StopFinished(replyTo)).PipeTo(Self);
                Become(Stopping);
            });
        });
        Command<DestroyContainer>(BeginDestroy);
        Command<GraceTimeUp>(Reap);
    }

    private void Stopping()
    {
        Queries();
        ProcessCommands();
        Command<RunProcess>(_ => Sender.Tell(new Status.Failure(_state.CannotRun()!)));
        Command<StopFinished>(msg => Journal(ContainerState.Changed(ContainerLifecycle.Stopped, "stopped"), msg.ReplyTo, () =>
        {
            _log.Info("[{0}] stop finished", Handle);
            msg.ReplyTo?.Tell(Done.Instance);
            Publish(ContainerEvent.Stopped);
            Become(Stopped);
            Stash.UnstashAll();
        }));
        CommandAny(_ => Stash.Stash());
    }

    private void Stopped()
    {
        Queries();
        LimitCommands();
        NetworkCommands();
        ProcessCommands();
        Command<RunProcess>(_ => Sender.Tell(new Status.Failure(_state.CannotRun()!)));
        Command<StopContainer>(_ => Sender.Tell(Done.Instance));
        Command<DestroyContainer>(BeginDestroy);
        Command<GraceTimeUp>(Reap);
    }

    private void Destroying()
    {
        Snapshots();
        ProcessBookkeeping();
        Command<DestroyContainer>(_ => _destroyWaiters.Add(Sender));
        Command<GetInfo>(_ => Sender.Tell(Info([])));
        Command<DestroyFinished>(msg =>
        {
            if (msg.Error is null)
            {
                Journal(ContainerState.Changed(ContainerLifecycle.Destroyed), null, () =>
                {
                    _log.Info("[{0}] destroy finished", Handle);
                    Publish(ContainerEvent.Destroyed);
                    foreach (var w in _destroyWaiters) w.Tell(new ContainerDestroyed(Handle));
                    _destroyWaiters.Clear();
                    BecomeGone();
                });
                return;
            }
            _log.Error(msg.Error, "[{0}] destroy failed", Handle);
            Journal(ContainerState.Changed(ContainerLifecycle.Broken, $"destroy failed: {msg.Error.Message}"), null, () =>
            {
                var error = new GardenException(ErrorKind.Internal, $"destroy {Handle} failed: {msg.Error.Message}", msg.Error);
                foreach (var w in _destroyWaiters) w.Tell(new Status.Failure(error));
                _destroyWaiters.Clear();
                Publish(ContainerEvent.Broken, $"destroy failed: {msg.Error.Message}");
                Become(Broken);
                Context.Parent.Tell(new ContainerReady(Handle, Healthy: false)); // a recovering host stops waiting for it

            });
        });
        CommandAny(_ => Sender.Tell(new Status.Failure(
            new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} is being destroyed"))));
    }

    private void Broken()
    {
        Timers.Cancel(ExitWatchTimer);
        ProcessBookkeeping();
        Queries();
        Command<DestroyContainer>(BeginDestroy);
        Command<GraceTimeUp>(Reap);
        CommandAny(_ => Sender.Tell(new Status.Failure(new GardenException(ErrorKind.FailedPrecondition,
            $"container {Handle} is broken ({_state.Events.LastOrDefault()}); destroy it"))));
    }

    /// <summary>Nothing left: the host releases the handle and stops this actor.</summary>
    private void BecomeGone()
    {
        Context.Parent.Tell(new ContainerGone(Handle));
        Become(() =>
        {
            Snapshots();
            CommandAny(_ => Sender.Tell(new Status.Failure(GardenException.UnknownHandle(Handle))));
        });
    }

    private void Queries()
    {
        Snapshots();
        Command<GetInfo>(_ =>
        {
            var replyTo = Sender;
            _agent.ListAsync(CancellationToken.None).ContinueWith(t => t.IsCompletedSuccessfully
                    ? new InfoReady([.. t.Result.Where(p => !p.Exited).Select(p => p.Id)], null, replyTo)
                    : new InfoReady([], t.Exception!.GetBaseException(), replyTo))
                .PipeTo(Self);
        });
        Command<InfoReady>(msg =>
        {
            // A broken container's agent is often gone: its info (and the reason in its events) still matters. A serving
            // container whose agent does not answer gets an error naming it, not a list of processes that may be wrong.
            if (msg.AgentError is null || _state.Lifecycle == ContainerLifecycle.Broken) msg.ReplyTo.Tell(Info(msg.ProcessIds));
            else msg.ReplyTo.Tell(new Status.Failure(AgentErrors.ToGarden(msg.AgentError, Handle)));
        });
        Command<OomKilled>(_ =>
        {
            // A container looping on allocations is killed hundreds of times a second: one record (and one event) per
            // garden.oom-event-interval at most, counting the kills in between.
            _oomUnjournaled++;
            _oomLastUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            if (Timers.IsTimerActive(OomTimer)) return; // a record is due when the interval ends
            var since = DateTime.UtcNow - _oomJournaledAt;
            if (since >= _settings.OomEventInterval) JournalOom();
            else Timers.StartSingleTimer(OomTimer, OomFlush.Instance, _settings.OomEventInterval - since);
        });
        Command<OomFlush>(_ =>
        {
            if (_oomUnjournaled > 0) JournalOom();
        });
        Command<GetLimits>(_ =>
        {
            var replyTo = Sender;
            ReadLimitsAsync().ContinueWith(t =>
                t.IsCompletedSuccessfully ? (object)new LimitsInForce(t.Result) : new Status.Failure(Internal("reading limits", t.Exception!))).PipeTo(replyTo);
        });
        Command<GetMetrics>(_ =>
        {
            var replyTo = Sender;
            var created = _state.CreatedUnixMs;
            var net = ContainerNetwork();
            Task.Run(() =>
            {
                var usage = _fx.Disk.Usage(_paths.Depot);
                return (object)new ContainerMetrics(Handle, _fx.Cgroups.Metrics(Handle), usage?.Used ?? 0, usage?.Size ?? 0,
                    created == 0 ? TimeSpan.Zero : DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeMilliseconds(created),
                    net is null ? default : _fx.Network.Counters(net));
            }).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : new Status.Failure(Internal("reading metrics", t.Exception!)))
                .PipeTo(replyTo);
        });
        Command<GetProperties>(_ => Sender.Tell(new PropertiesResult(_state.Properties)));
        Command<SetGraceTime>(msg =>
        {
            if (GraceTime.Problem(msg.GraceTime) is { } problem)
            {
                Sender.Tell(new Status.Failure(problem));
                return;
            }
            var replyTo = Sender;
            Journal(new GraceTimeChanged { GraceTimeMs = (ulong)msg.GraceTime.TotalMilliseconds }, replyTo, () =>
            {
                _log.Info("[{0}] grace time set to {1}", Handle, GraceTime.Describe(_state.GraceTime));
                RestartGraceTimer();
                replyTo.Tell(Done.Instance);
            });
        });
        Command<GetProperty>(msg =>
        {
            if (_state.Properties.TryGetValue(msg.Key, out var v)) Sender.Tell(new PropertyValue(v));
            else Sender.Tell(new Status.Failure(NoProperty(msg.Key)));
        });
        Command<SetProperty>(msg =>
        {
            if (msg.Key.Length == 0)
            {
                Sender.Tell(new Status.Failure(GardenException.Invalid("key", "must not be empty")));
                return;
            }
            var replyTo = Sender;
            Journal(new PropertySet { Key = msg.Key, Value = msg.Value }, replyTo, () => replyTo.Tell(Done.Instance));
        });
        Command<RemoveProperty>(msg =>
        {
            if (!_state.Properties.ContainsKey(msg.Key))
            {
                Sender.Tell(new Status.Failure(NoProperty(msg.Key)));
                return;
            }
            var replyTo = Sender;
            Journal(new PropertyRemoved { Key = msg.Key }, replyTo, () => replyTo.Tell(Done.Instance));
        });
    }

    private void LimitCommands()
    {
        Command<SetLimits>(msg =>
        {
            var problem = msg.Change.Problem();
            if (problem is not null)
            {
                Sender.Tell(new Status.Failure(problem));
                return;
            }
            if (msg.Change.DiskBytes is not null && _state.Limits.DiskBytes is null)
            {
                Sender.Tell(new Status.Failure(GardenException.Invalid("disk",
                    $"container {Handle} was created without a disk limit; a disk limit can only be set at create")));
                return;
            }
            var net = ContainerNetwork();
            if (msg.Change.BandwidthRate is not null && net is null)
            {
                Sender.Tell(new Status.Failure(GardenException.Invalid("bandwidth", $"container {Handle} has no network to limit")));
                return;
            }
            var replyTo = Sender;
            var current = _state.Limits;
            _log.Info("[{0}] limit starting", Handle);
            Task.Run(async () =>
            {
                _fx.Cgroups.Apply(Handle, msg.Change.ToCgroup());
                if (msg.Change.DiskBytes is { } disk && disk != current.DiskBytes)
                    await _fx.Disk.ResizeAsync(Handle, _paths.Depot, disk, CancellationToken.None);
                if (msg.Change.BandwidthRate is not null)
                    await _fx.Network.SetBandwidthAsync(net!, current.With(msg.Change).ToBandwidth(), CancellationToken.None);
                return await ReadLimitsAsync();
            }).ContinueWith(t => t.IsCompletedSuccessfully ? (object)new LimitsApplied(t.Result, replyTo)
                    : new LimitsFailed(t.Exception!.GetBaseException(), replyTo))
                .PipeTo(Self);
            _changing = true;
            BecomeStacked(() =>
            {
                Snapshots();
                Command<LimitsApplied>(done => Journal(new LimitsChanged { Limits = ContainerState.ToRecord(done.InForce) }, done.ReplyTo, () =>
                {
                    _log.Info("[{0}] limit finished", Handle);
                    done.ReplyTo.Tell(new LimitsInForce(done.InForce));
                    UnbecomeStacked();
                _changing = false;
                    Stash.UnstashAll();
                }));
                Command<LimitsFailed>(failed =>
                {
                    _log.Warning("[{0}] limit refused: {1}", Handle, failed.Error.Message);
                    failed.ReplyTo.Tell(new Status.Failure(ToLimitError(failed.Error)));
                    UnbecomeStacked();
                _changing = false;
                    Stash.UnstashAll();
                });
                CommandAny(_ => Stash.Stash());
            });
        });
    }

    /// <summary>What the kernel holds now: the cgroup's limits, the disk's size, the bandwidth limit.</summary>
    private async Task<Limits> ReadLimitsAsync()
    {
        var cg = _fx.Cgroups.Read(Handle);
        var disk = _fx.Disk.Usage(_paths.Depot);
        var bandwidth = ContainerNetwork() is { } net ? await _fx.Network.ReadBandwidthAsync(net, CancellationToken.None) : null;
        return new Limits(cg.MemoryBytes, cg.CpuWeight, cg.CpuQuota, cg.Pids, disk?.Size, bandwidth?.RateBytes, bandwidth?.BurstBytes);
    }

    /// <summary>NetIn and NetOut: the whole rule set of the container is applied in one batch (nothing half-applied),
    /// then journaled, then acknowledged. A restart re-applies what the journal holds.</summary>
    private void NetworkCommands()
    {
        Command<ApplyNetIn>(msg =>
        {
            if (ContainerNetwork() is not { } net)
            {
                Sender.Tell(new Status.Failure(new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} has no network")));
                return;
            }
            var replyTo = Sender;
            var rules = Firewall(net, _state.NetIn.Add(msg.Mapping), _state.NetOut);
            ChangeNetwork(rules, new NetInAdded { Mapping = ContainerState.ToRecord(msg.Mapping) }, new NetInInForce(msg.Mapping), replyTo);
        });
        Command<NetOut>(msg =>
        {
            if (ContainerNetwork() is not { } net)
            {
                Sender.Tell(new Status.Failure(new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} has no network")));
                return;
            }
            try
            {
                if (msg.Rules.IsDefaultOrEmpty) throw GardenException.Invalid("rules", "no rule given");
                foreach (var r in msg.Rules) r.Validated();
            }
            catch (Exception e) when (e is NetworkSpecException or GardenException)
            {
                Sender.Tell(new Status.Failure(e as GardenException ?? GardenException.Invalid(((NetworkSpecException)e).Field, ((NetworkSpecException)e).Problem)));
                return;
            }
            var evt = new NetOutAdded();
            evt.Rules.AddRange(msg.Rules.Select(ContainerState.ToRecord));
            ChangeNetwork(Firewall(net, _state.NetIn, _state.NetOut.AddRange(msg.Rules)), evt, Done.Instance, Sender);
        });
    }

    private void ChangeNetwork(ContainerFirewall rules, IJournalRecord evt, object reply, IActorRef replyTo)
    {
        _log.Info("[{0}] firewall change starting", Handle);
        Task.Run(() => _fx.Firewall.ApplyAsync(rules, CancellationToken.None))
            .ContinueWith(t => t.IsCompletedSuccessfully ? (object)new NetworkChanged(evt, reply, replyTo)
                : new NetworkChangeFailed(t.Exception!.GetBaseException(), replyTo))
            .PipeTo(Self);
        _changing = true;
        BecomeStacked(() =>
        {
            Snapshots();
            Command<NetworkChanged>(done => Journal(done.Event, done.ReplyTo, () =>
            {
                _log.Info("[{0}] firewall change finished", Handle);
                done.ReplyTo.Tell(done.Reply);
                UnbecomeStacked();
                _changing = false;
                Stash.UnstashAll();
            }));
            Command<NetworkChangeFailed>(failed =>
            {
                _log.Warning("[{0}] firewall change refused: {1}", Handle, failed.Error.Message);
                failed.ReplyTo.Tell(new Status.Failure(failed.Error switch
                {
                    NetworkSpecException n => GardenException.Invalid(n.Field, n.Problem),
                    _ => new GardenException(ErrorKind.Internal, $"container {Handle}: firewall change failed: {failed.Error.Message}", failed.Error),
                }));
                UnbecomeStacked();
                _changing = false;
                Stash.UnstashAll();
            });
            CommandAny(_ => Stash.Stash());
        });
    }

    private void WatchOom()
    {
        if (_oomWatch is not null) return;
        var self = Self;
        try
        {
            _oomWatch = _fx.Oom.Watch(Handle, () => self.Tell(OomKilled.Instance));
        }
        catch (Exception e)
        {
            _log.Error(e, "[{0}] cannot watch for OOM kills", Handle);
        }
    }

    private const string OomTimer = "oom";
    private ulong _oomUnjournaled;          // kills notified since the last OutOfMemory record
    private long _oomLastUnixMs;
    private DateTime _oomJournaledAt = DateTime.MinValue;

    private sealed record OomFlush
    {
        public static readonly OomFlush Instance = new();
    }

    private void JournalOom()
    {
        var kills = _oomUnjournaled;
        _oomUnjournaled = 0;
        _oomJournaledAt = DateTime.UtcNow;
        var total = Try(() => _fx.Cgroups.Metrics(Handle).OomKills, 0UL);
        _log.Warning("[{0}] out of memory: the kernel killed {1} process(es) since the last report ({2} so far)", Handle, kills, total);
        Journal(new OutOfMemory { AtUnixMs = _oomLastUnixMs, OomKills = total, Kills = kills }, null,
            () => Publish(ContainerEvent.OutOfMemory, $"{_state.OomKills} kill{(_state.OomKills == 1 ? "" : "s")} so far"));
    }

    private void StopWatchingOom()
    {
        _oomWatch?.Dispose();
        _oomWatch = null;
    }

    protected override void PostStop()
    {
        StopWatchingOom();
        _agentLog?.DisposeAsync();
        _agentLog = null;
        base.PostStop();
    }

    /// <summary>The agent's log comes over its socket into depot/&lt;handle&gt;/agent.log (the agent holds no host file).</summary>
    private void FollowAgentLog()
    {
        if (_agentLog is not null) return;
        var log = _log;
        var handle = Handle;
        _agentLog = _agent.FollowLog(_paths.AgentLog, problem => log.Warning("[{0}] agent log: {1}", handle, problem));
    }

    private static T Try<T>(Func<T> f, T fallback)
    {
        try { return f(); } catch { return fallback; }
    }

    private GardenException Internal(string what, Exception e) =>
        new(ErrorKind.Internal, $"container {Handle}: {what}: {e.GetBaseException().Message}", e);

    private static GardenException ToLimitError(Exception e) => e switch
    {
        GardenException g => g,
        CgroupLimitException c => new GardenException(ErrorKind.InvalidArgument, c.Message, c),
        DiskQuotaException d => new GardenException(ErrorKind.InvalidArgument, $"disk: {d.Message}", d),
        _ => new GardenException(ErrorKind.Internal, $"limit failed: {e.Message}", e),
    };

    private GardenException NoProperty(string key) =>
        new(ErrorKind.NotFound, $"container {Handle} has no property \"{key}\"");

    /// <summary>After a restart: the processes an earlier daemon started and that still run get their exit events too, and
    /// so do those that exited while no daemon ran (the agent says nobody has seen their exit).</summary>
    private void WatchRunningProcesses()
    {
        var self = Self;
        _agent.ListAsync(CancellationToken.None).ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully)
                self.Tell(new RunningFound([.. t.Result.Where(p => !p.Exited || !p.ExitReported).Select(p => p.Id)]));
        });
    }

    private sealed record RunningFound(IReadOnlyList<string> Ids);

    /// <summary>What every state with ProcessActors handles: their start and their end (a container being destroyed, or
    /// broken, watches no exit: its processes go with it).</summary>
    private void ProcessBookkeeping(bool watchExits = false)
    {
        Command<ProcessSpawned>(msg =>
        {
            if (watchExits) WatchExit(msg.ProcessId);
        });
        Command<ProcessIdle>(msg =>
        {
            if (_processes.Idle(msg.ProcessId, msg.Actor, msg.Handled, msg.ExitKnown)) Context.Stop(msg.Actor);
        });
    }

    private void WatchExit(string id)
    {
        _processes.Watch(id);
        if (!Timers.IsTimerActive(ExitWatchTimer))
            Timers.StartPeriodicTimer(ExitWatchTimer, ExitWatchTick.Instance, TimeSpan.FromSeconds(1));
    }

    /// <summary>A new ProcessActor for id (exitKnown: it exited and its exit was published before).</summary>
    private IActorRef NewProcessActor(string id, Exited? exitKnown = null)
    {
        var actor = Context.ActorOf(ProcessActor.Props(_agent, Handle, id, exitKnown), _processes.NameFor(id));
        _processes.Add(id, actor);
        return actor;
    }

    private void ProcessCommands()
    {
        ProcessBookkeeping(watchExits: true);
        Command<RunningFound>(msg =>
        {
            foreach (var id in msg.Ids) WatchExit(id);
        });
        Command<ExitWatchTick>(_ =>
        {
            if (_processes.Pending == 0)
            {
                Timers.Cancel(ExitWatchTimer);
                return;
            }
            // at most one List in flight: an agent slower than the tick (or frozen) is not asked again meanwhile
            if (_processes.StartList() is not { } asked) return;
            _agent.ListAsync(CancellationToken.None)
                .ContinueWith(t => new ExitsSeen(t.IsCompletedSuccessfully ? t.Result : null, asked))
                .PipeTo(Self);
        });
        Command<ExitsSeen>(msg =>
        {
            foreach (var f in _processes.Listed(msg.Processes, msg.Asked))
            {
                if (f.Actor is not null)
                {
                    _processes.Send(f.Id, f.Gone ? ProcessGone.Instance : new ProcessExitSeen(f.Exit!.ExitCode, f.Exit.Signal), Self);
                }
                else if (f.Gone)
                {
                    _log.Warning("[{0}] process {1}: the agent forgot it before its exit was seen here", Handle, f.Id);
                }
                else
                {
                    // a process of an earlier daemon, or one whose actor is gone: its exit needs no actor to be told
                    _log.Info("[{0}] process {1} exited with {2}", Handle, f.Id, f.Exit!.ExitCode);
                    Context.System.EventStream.Publish(new ContainerEvent(Handle, ContainerEvent.ProcessExited, DateTimeOffset.UtcNow, f.Id, f.Exit.ExitCode));
                }
            }
        });
        Command<AttachProcess>(Attach);
        Command<SignalProcess>(Signal);
        Command<SetProcessTty>(msg =>
        {
            if (RefuseBadId(msg.ProcessId)) return;
            Task.Run(() => _agent.SetTtyAsync(msg.ProcessId, msg.Size.Rows, msg.Size.Cols, CancellationToken.None))
                .ContinueWith(t => t.IsCompletedSuccessfully ? (object)Done.Instance
                    : new Status.Failure(AgentErrors.ToGarden(t.Exception!.GetBaseException(), Handle, msg.ProcessId)))
                .PipeTo(Sender);
        });
        Command<AttachResolved>(msg =>
        {
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
        });
    }

    // ---- handlers ----

    private void Run(RunProcess msg)
    {
        var spec = msg.Spec.Id.Length == 0 ? msg.Spec with { Id = Names.Generate() } : msg.Spec;
        try
        {
            Names.Validate("process id", spec.Id);
            if (spec.Path.Length == 0) throw GardenException.Invalid("path", "must not be empty");
        }
        catch (GardenException e)
        {
            Sender.Tell(new Status.Failure(e));
            return;
        }
        if (_processes.Find(spec.Id) is not null)
        {
            Sender.Tell(new Status.Failure(new GardenException(ErrorKind.AlreadyExists,
                $"process {spec.Id} already exists in container {Handle}")));
            return;
        }
        var env = (_state.Spec?.Env ?? []).AddRange(spec.Env);
        static string Key(string name) => RlimitNames.Canonical(name) ?? name;
        var asked = spec.Rlimits.Select(r => Key(r.Name)).ToHashSet();
        var rlimits = spec.Rlimits.AddRange(_settings.DefaultRlimits.Where(d => !asked.Contains(Key(d.Name))));
        NewProcessActor(spec.Id);
        // the actor reports ProcessSpawned once the agent runs it, and the exit watcher takes it from there
        _processes.Send(spec.Id, new StartProcess(spec with { Env = env, Rlimits = rlimits }, msg.Detach, Sender), Sender);
    }

    /// <summary>A process id that is not a valid name is refused as InvalidArgument at every entry (Run, Attach, Signal,
    /// SetTty): no process of this daemon has one.</summary>
    private bool RefuseBadId(string processId)
    {
        if (Names.Problem(processId) is not { } problem) return false;
        Sender.Tell(new Status.Failure(GardenException.Invalid("process id", $"{Names.Quote(processId)} {problem}")));
        return true;
    }

    private void Attach(AttachProcess msg)
    {
        if (RefuseBadId(msg.ProcessId)) return;
        if (_processes.Send(msg.ProcessId, msg, Sender)) return;
        // A process with no actor here (an earlier daemon's, or one that is done): ask the agent, which keeps recent exits.
        var replyTo = Sender;
        var self = Self;
        var handle = Handle;
        _agent.ListAsync(CancellationToken.None).ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully) self.Tell(new AttachResolved(msg, t.Result.FirstOrDefault(p => p.Id == msg.ProcessId), replyTo));
            else replyTo.Tell(new Status.Failure(AgentErrors.ToGarden(t.Exception!.GetBaseException(), handle, msg.ProcessId)));
        });
    }

    private void Signal(SignalProcess msg)
    {
        if (RefuseBadId(msg.ProcessId)) return;
        if (_processes.Send(msg.ProcessId, msg, Sender)) return;
        var replyTo = Sender;
        _agent.SignalAsync(msg.ProcessId, msg.Signal, CancellationToken.None)
            .ContinueWith(t => t.IsCompletedSuccessfully ? (object)Done.Instance
                : new Status.Failure(AgentErrors.ToGarden(t.Exception!.GetBaseException(), Handle, msg.ProcessId)))
            .PipeTo(replyTo);
    }

    private void BeginDestroy(DestroyContainer msg)
    {
        _destroyWaiters.Add(Sender);
        Journal(ContainerState.Changed(ContainerLifecycle.Destroying), null, () => StartDestroy(graceful: true));
    }

    private void StartDestroy(bool graceful)
    {
        Timers.Cancel(ExitWatchTimer);
        StopWatchingOom();
        var agentLog = _agentLog;
        _agentLog = null;
        _settings.Faults.Hit("destroy-started");
        _log.Info("[{0}] destroy starting", Handle);
        DestroyAsync(graceful, agentLog).ContinueWith(t => new DestroyFinished(t.IsCompletedSuccessfully ? null : t.Exception!.GetBaseException()))
            .PipeTo(Self);
        Become(Destroying);
    }

    /// <summary>Tells the host what its List shows of this container, when that changed.</summary>
    private void TellHost()
    {
        if (_told is { } t && t.Lifecycle == _state.Lifecycle && t.Properties == _state.Properties) return;
        _told = new ContainerChanged(Handle, _state.Lifecycle, _state.Properties);
        Context.Parent.Tell(_told);
    }

    private ContainerChanged? _told;

    private ContainerInfo Info(ImmutableArray<string> processIds) => new(Handle, _state.Lifecycle, _state.Events,
        RootfsMountPoint, processIds, _state.Properties, _state.Spec?.Rootfs ?? "", _state.Spec?.Privileged ?? false,
        _state.Limits with { BandwidthBurst = _state.Limits.ToBandwidth()?.BurstBytes }, _state.Network, _state.NetIn,
        _state.Spec?.BindMountsOrEmpty ?? [], _state.GraceTime, _state.OomKills,
        _state.LastOomUnixMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(_state.LastOomUnixMs),
        _state.Spec?.UserNamespace);

    private static GardenException ToCreateError(Exception e) => e switch
    {
        GardenException g => g,
        RootfsException r => GardenException.Invalid("rootfs", r.Message),
        CgroupLimitException c => new GardenException(ErrorKind.InvalidArgument, c.Message, c),
        DiskQuotaException d => GardenException.Invalid("disk", d.Message),
        NetworkSpecException n => GardenException.Invalid(n.Field, n.Problem),
        _ => new GardenException(ErrorKind.Internal, $"create failed: {e.Message}", e),
    };

    // ---- Linux work (off the actor thread; reads only immutable fields) ----

    /// <summary>Depot, rootfs, runc, agent: each finished step is undone in reverse order if a later one fails.
    /// An unprivileged container's user namespace (with the network namespace it owns) is made first and held until runc
    /// has joined it: the network, the idmapped rootfs and runc all need it.</summary>
    private async Task<string> CreateAsync(ContainerSpec spec)
    {
        var undo = new Stack<(string Step, Func<Task> Action)>();
        var inFlight = new List<Task>();
        IUserNamespaceHolder? userns = null;
        try
        {
            const UnixFileMode rootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
            Directory.CreateDirectory(_paths.Depot, rootOnly);
            Directory.CreateDirectory(Path.GetDirectoryName(_paths.AgentSocket)!, rootOnly);
            undo.Push(("depot", () => { DeleteDepot(); return Task.CompletedTask; }));

            string? layer = null;
            if (spec.LimitsOrNone.DiskBytes is { } disk)
            {
                undo.Push(("disk", () => _fx.Disk.DestroyAsync(Handle, _paths.Depot, CancellationToken.None)));
                layer = await _fx.Disk.CreateAsync(Handle, _paths.Depot, disk, CancellationToken.None);
            }

            if (spec.UserNamespace is { } mapping)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                userns = await _fx.UserNamespaces.CreateAsync(Handle, mapping, CancellationToken.None);
                _log.Info("[{0}] user namespace {1} made in {2:0.0} ms (holder pid {3})", Handle, mapping, clock.Elapsed.TotalMilliseconds, userns.Pid);
            }
            var root = userns is null ? null : new UserNamespaceRoot(userns.UserNamespacePath, userns.Mapping.RootUid, userns.Mapping.RootGid);

            // The network's links are made while the rootfs mounts (runc needs the namespace); its firewall rules and
            // bandwidth while runc starts the container (no process of the user runs before Create returns).
            string? netns = null;
            List<BindMountSpec> mounts = [];
            var net = spec.Network is { } allocation ? _settings.Network.For(Handle, allocation) : null;
            var networkUp = Task.CompletedTask;
            if (net is not null)
            {
                WriteNameFiles(spec.Network!, root);
                mounts.Add(new BindMountSpec(_paths.Hosts, "/etc/hosts", ReadOnly: true));
                mounts.Add(new BindMountSpec(_paths.Resolv, "/etc/resolv.conf", ReadOnly: true));
                undo.Push(("network", () => _fx.Network.TearDownAsync(net, CancellationToken.None)));
                var netnsOf = userns?.Pid;
                networkUp = Task.Run(() => _fx.Network.SetUpAsync(net, CancellationToken.None, netnsOf));
                inFlight.Add(networkUp);
                netns = net.NetnsPath;
            }

            undo.Push(("rootfs", () => _fx.Rootfs.DestroyAsync(Handle, _paths.Rootfs, CancellationToken.None)));
            var rootfsClock = System.Diagnostics.Stopwatch.StartNew();
            var rootfs = await _fx.Rootfs.CreateAsync(Handle, spec.Rootfs, _paths.Rootfs, layer, root, CancellationToken.None);
            _log.Info("[{0}] rootfs mounted{1} in {2:0.0} ms", Handle, root is null ? "" : " (idmapped base)", rootfsClock.Elapsed.TotalMilliseconds);
            _settings.Faults.Hit("create-rootfs");
            await networkUp;

            var firewallUp = Task.CompletedTask;
            if (net is not null)
            {
                _settings.Faults.Hit("create-network");
                undo.Push(("firewall", () => _fx.Firewall.RemoveAsync(net, CancellationToken.None)));
                var bandwidth = spec.LimitsOrNone.ToBandwidth();
                firewallUp = Task.Run(async () =>
                {
                    await _fx.Firewall.ApplyAsync(Firewall(net, spec.NetInOrEmpty, spec.NetOutOrEmpty), CancellationToken.None);
                    if (bandwidth is { } b) await _fx.Network.SetBandwidthAsync(net, b, CancellationToken.None);
                });
                inFlight.Add(firewallUp);
            }

            // The caller's mounts (validated by the host) go after the container's own: one over /etc brings its own hosts file.
            mounts.AddRange(spec.BindMountsOrEmpty.Select(b => new BindMountSpec(b.Source, b.NormalDestination, b.ReadOnly)));

            undo.Push(("cgroup", () => { _fx.Cgroups.Release(Handle); return Task.CompletedTask; }));
            var processCgroup = _fx.Cgroups.PrepareProcessCgroup(Handle, root is null ? null : new CgroupOwner(root.Uid, root.Gid));
            var bundle = new BundleSpec(Handle, rootfs, _settings.AgentBinary, _paths.AgentSocket, _paths.AgentLog,
                _fx.Cgroups.PathFor(Handle), spec.Privileged, spec.Env, processCgroup, netns, mounts,
                userns is null ? null : new BundleUserNamespace(userns.UserNamespacePath, userns.Mapping));
            undo.Push(("runtime", RemoveFromRuntimeAsync));
            await _fx.Runtime.RunAsync(bundle, _paths.Bundle, CancellationToken.None);
            // runc has joined the namespaces: the container, its mounts and the bound netns keep them from now on.
            if (userns is not null) await userns.DisposeAsync();
            _settings.Faults.Hit("create-runtime");
            // runc made the cgroup; the limits go straight into its files before any process of the user runs.
            if (!spec.LimitsOrNone.ToCgroup().Equals(ResourceLimits.None)) _fx.Cgroups.Apply(Handle, spec.LimitsOrNone.ToCgroup());

            using var cts = new CancellationTokenSource(_settings.AgentStartTimeout);
            while (true)
            {
                try
                {
                    await _agent.PingAsync(cts.Token);
                    break;
                }
                catch (AgentUnavailableException u) when (u.TimedOut && !cts.IsCancellationRequested)
                {
                    // a call's deadline is shorter than a slow first start: ask again until the start's own is up
                }
                catch (Exception e) when (e is OperationCanceledException or AgentUnavailableException)
                {
                    // what the agent said before it gave up went to its stderr, runc's log
                    throw new GardenException(ErrorKind.Internal,
                        $"the container's agent did not answer within {_settings.AgentStartTimeout.TotalSeconds:0.#}s: {e.Message}{AgentStartupErrors()}", e);
                }
            }
            await firewallUp;
            return rootfs;
        }
        catch
        {
            // Steps still running beside the one that failed finish first: undoing under them would race.
            try { await Task.WhenAll(inFlight); } catch { /* their own failure is undone below like the rest */ }
            if (userns is not null) await userns.DisposeAsync();
            while (undo.TryPop(out var step))
            {
                try { await step.Action(); }
                catch (Exception e) { _log.Error(e, "[{0}] create: undo {1} failed", Handle, step.Step); }
            }
            throw;
        }
    }

    /// <summary>The last lines the agent wrote to its stderr (runc's log) before it pointed it at /dev/null: why it did not start.</summary>
    private string AgentStartupErrors()
    {
        try
        {
            var lines = File.ReadLines(Path.Combine(_paths.Bundle, "runc-run.log"))
                .Where(l => l.StartsWith("garden-agent:", StringComparison.Ordinal)).TakeLast(3).ToList();
            return lines.Count == 0 ? "" : $" ({string.Join("; ", lines)})";
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>The container's /etc/hosts (localhost and its own name) and /etc/resolv.conf (the configured name servers,
    /// else the host's that are reachable from a container, i.e. not on loopback).</summary>
    private void WriteNameFiles(NetworkAllocation a, UserNamespaceRoot? root)
    {
        File.WriteAllText(_paths.Hosts, $"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{a.Address} {OciBundle.Hostname(Handle)}\n");
        var servers = _settings.Network.DnsServers.IsDefaultOrEmpty ? HostNameServers() : [.. _settings.Network.DnsServers];
        var resolv = servers.Count == 0 ? "# no name server: the host's are all on loopback and none is configured (garden.network.dns-servers)\n"
            : string.Concat(servers.Select(s => $"nameserver {s}\n"));
        File.WriteAllText(_paths.Resolv, resolv);
        // World-readable (they are bind-mounted read-only and hold nothing secret), and container root's, as in Garden.
        foreach (var file in new[] { _paths.Hosts, _paths.Resolv })
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            root?.Own(file);
        }
    }

    private static List<string> HostNameServers()
    {
        try
        {
            return File.ReadLines("/etc/resolv.conf").Select(l => l.Trim().Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length >= 2 && f[0] == "nameserver" && Ipv4.TryParse(f[1], out var ip) && ip.Value >> 24 != 127)
                .Select(f => f[1]).ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>TERM every process in the container (ours and whatever they started); once ours have exited or the
    /// grace time is over, KILL whatever is left.</summary>
    private async Task StopProcessesAsync(TimeSpan grace)
    {
        try
        {
            if (grace > TimeSpan.Zero && (await _agent.ListAsync(CancellationToken.None)).Any(p => !p.Exited))
            {
                await _agent.SignalAllAsync(15, CancellationToken.None);
                await AllExitedAsync(grace);
            }
            await _agent.SignalAllAsync(9, CancellationToken.None);
            await AllExitedAsync(TimeSpan.FromSeconds(5));
        }
        catch (AgentUnavailableException)
        {
            // No agent: nothing in the container runs processes for us; the runtime's KILL ends the rest.
        }
    }

    private async Task<bool> AllExitedAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if ((await _agent.ListAsync(CancellationToken.None)).All(p => p.Exited)) return true;
            }
            catch (AgentUnavailableException)
            {
                return true;
            }
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(20);
        }
    }

    /// <summary>Releases everything a container may hold; each step is idempotent, so it also finishes what an
    /// earlier daemon left half done.</summary>
    private async Task DestroyAsync(bool graceful, IAsyncDisposable? agentLog)
    {
        if (Names.Problem(Handle) is not null)
        {
            // No build ever made anything on the host under a handle that is not a valid name (the actor that would
            // have done it could not be started), and such a name must never reach runc or a path: nothing to release.
            _log.Warning("[{0}] destroy: the handle is not a valid name; nothing of it exists on the host", Names.Quote(Handle));
            return;
        }
        if (graceful) await StopProcessesAsync(_settings.DestroyGrace);
        else _fx.Runtime.Adopt(Handle, _paths.Bundle);
        try
        {
            await RemoveFromRuntimeAsync();
        }
        finally
        {
            // the agent is gone and its last lines are in: no more writes into the depot
            if (agentLog is not null) await agentLog.DisposeAsync();
        }
        _settings.Faults.Hit("destroy-runtime");
        // Nothing runs in the container any more: its firewall rules, network and filesystems go in parallel.
        List<Task> releases =
        [
            Task.Run(async () =>
            {
                await _fx.Rootfs.DestroyAsync(Handle, _paths.Rootfs, CancellationToken.None);
                await _fx.Disk.DestroyAsync(Handle, _paths.Depot, CancellationToken.None);
            }),
        ];
        if (ContainerNetwork() is { } net)
        {
            releases.Add(Task.Run(() => _fx.Firewall.RemoveAsync(net, CancellationToken.None)));
            releases.Add(Task.Run(() => _fx.Network.TearDownAsync(net, CancellationToken.None)));
        }
        await Task.WhenAll(releases);
        DeleteDepot();
    }

    private async Task RemoveFromRuntimeAsync()
    {
        await _fx.Runtime.KillAsync(Handle, 9, all: false, CancellationToken.None);
        if (!await _fx.Runtime.WaitStoppedAsync(Handle, TimeSpan.FromSeconds(10), CancellationToken.None))
            throw new GardenException(ErrorKind.Internal, $"container {Handle}: init did not exit 10s after SIGKILL");
        await _fx.Runtime.DeleteAsync(Handle, CancellationToken.None);
        _fx.Cgroups.Release(Handle);
    }

    private void DeleteDepot()
    {
        // Never recurse into a root that is still mounted.
        if (_fx.Rootfs.IsMounted(_paths.Rootfs.MountPoint) || _fx.Rootfs.IsMounted(_paths.Rootfs.LegacyMountPoint) || _fx.Disk.IsMounted(_paths.Depot))
            throw new GardenException(ErrorKind.Internal, $"container {Handle}: rootfs or disk still mounted, depot kept");
        if (File.Exists(_paths.AgentSocket)) File.Delete(_paths.AgentSocket);
        OverlayRootfs.DeleteTree(_paths.Depot);
    }
}
