using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Garden.Actors.Container;
using Garden.Actors.Kernel;
using Garden.Linux.Host;
using Garden.Linux.Network;
using Garden.Protocol.Journal;

namespace Garden.Actors.Host;

/// <summary>The root of the tree (persistence id "host"): a persistent shell over <see cref="HostState"/> (which handles
/// exist, the incarnation of each container's journal, what each holds of the pools), the <see cref="ContainerDirectory"/>
/// List reads, and the router of every container request.
/// Start: recover the registry, record this daemon's version, start every ContainerActor (each recovers and reconciles
/// itself), and answer Unavailable until all are ready or the recovery budget is spent.
/// Serving: a Create or a NetIn is decided by <see cref="HostState.Admit"/> / <see cref="HostState.ReserveNetIn"/> from the
/// <see cref="HostFacts"/> gathered first off the actor's thread (whether paths exist and ports are bound), one at a time,
/// then journaled (a Create's registration without holding the next decision back: the next one sees the pools it took);
/// any other
/// request about a container is checked (<see cref="Requests.Problem"/>) and forwarded to it.
/// Supervision: a ContainerActor that throws is stopped, never restarted in place; if it stopped without being gone
/// (a journal write failed, a bug), it is started again from its journal, which reconciles it with the kernel.</summary>
public sealed class HostActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    private const int MaxRespawns = 3;

    private readonly GardenSettings _settings;
    private readonly ContainerEffects _effects;
    private readonly IHostResources _resources;
    private readonly Dictionary<string, string> _peas = new(); // a running pea's process id → its container's handle (not journaled: the containers tell it again after a restart)
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _children = new();
    private readonly Dictionary<IActorRef, string> _handles = new();
    private readonly Dictionary<string, int> _respawns = new();
    private readonly HashSet<string> _pending = new();
    /// <summary>Containers whose host record could not be applied: each is started broken, with the reason.</summary>
    private readonly Dictionary<string, string> _quarantined = new();
    private readonly RecoveryFinished _found = new() { DaemonVersion = Version };
    private readonly System.Diagnostics.Stopwatch _recoveryClock = System.Diagnostics.Stopwatch.StartNew();
    private TimeSpan _hostRecovered, _leftoversPruned; // on _recoveryClock: where the start's recovery went
    private HostState _state = HostState.Empty;
    private ContainerDirectory _directory = ContainerDirectory.Empty;
    private int _eventsSinceSnapshot;
    /// <summary>Per container, the NetIn its actor is applying (one at a time: its answer is the next NetInInForce or
    /// Status.Failure from it), and the NetIns waiting for it.</summary>
    private readonly Dictionary<string, (PortMapping Mapping, IActorRef ReplyTo)> _netIns = new();
    private readonly Dictionary<string, Queue<(ContainerProtocol.NetIn Request, IActorRef ReplyTo)>> _netInQueue = new();
    /// <summary>Admitted Creates whose registration is being journaled (in order): the next Create is decided meanwhile,
    /// on the state with these applied; each container starts once its registration is in the journal.</summary>
    private readonly List<ContainerRegistered> _admitting = new();
    /// <summary>Their containers' actors, started while the registration is written (an actor's start asks the journal
    /// for its highest sequence number, a round trip of its own); none is routed to or told its Create before then.</summary>
    private readonly Dictionary<string, IActorRef> _starting = new();
    /// <summary>Creates of a handle whose release still runs: each is taken up again once it finished.</summary>
    private readonly Dictionary<string, List<(HostProtocol.CreateContainer Request, IActorRef ReplyTo)>> _awaitingRelease = new();
    /// <summary>The releases running now (a pending one not in it waits for its retry).</summary>
    private readonly HashSet<string> _releasing = new();
    /// <summary>Per pending release, how many times it failed (its next try waits longer each time).</summary>
    private readonly Dictionary<string, int> _releaseFailures = new();
    /// <summary>Who asked, as gardend stops, to be told once every release has ended (<see cref="HostProtocol.FinishReleases"/>).</summary>
    private readonly List<IActorRef> _finishWaiters = [];
    /// <summary>gardend is stopping: releases are not left to a retry minutes away.</summary>
    private bool _stopping;
    /// <summary>Entries an earlier gardend left that this start does not keep: released once it serves.</summary>
    private readonly List<string> _poolToRelease = [];
    /// <summary>The warm pool entry being made now (one at a time), or null.</summary>
    private string? _poolMaking;
    /// <summary>Failed makes of pool entries in a row (the next refill waits longer each time).</summary>
    private int _poolFailures;
    /// <summary>A Create or NetIn is being decided off the actor's thread on a copy of the state: no pool entry is
    /// planned meanwhile (it would take from the pools the decision also sees as free).</summary>
    private bool _deciding;
    private long _decidingSince; // for the debug lines of the bench's breakdown
    /// <summary>Recovered and serving: only then is the pool made (a restart's work comes first).</summary>
    private bool _serving;
    /// <summary>Open while no user's work is in flight and none was asked for within garden.warm-pool.quiet-period: a pool
    /// entry being made waits for it before each step (the refill's low priority).</summary>
    private readonly IdleGate _idle = new();
    /// <summary>The refill delay passed with nothing in flight: the next MaybeRefill starts an entry.</summary>
    private bool _refillDue;
    /// <summary>Completed when this actor stops: a shutdown task waiting for its answer waits no longer.</summary>
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public HostActor(GardenSettings settings, ContainerEffects effects, IHostResources resources)
    {
        _settings = settings;
        _effects = effects;
        _resources = resources;

        Recover<SnapshotOffer>(o => _state = _state.Apply((HostSnapshot)o.Snapshot));
        Recover<IJournalRecord>(Fold);
        Recover<RecoveryCompleted>(_ => OnRecovered());
    }

    public override string PersistenceId => "host";

    protected override void PreStart()
    {
        base.PreStart();
        // A stopping gardend (SIGTERM, once the gateways stopped) ends every pending release before it exits: a gardend
        // stopped for good leaves nothing on the host. It asks this actor, so the question queues behind a container gone
        // whose release is still being journaled (the client may have its answer and have sent the SIGTERM meanwhile).
        // akka.coordinated-shutdown.phases.service-stop.timeout bounds the wait; what is left then stays pending in the
        // journal and the next start finishes it.
        var (self, stopped) = (Self, _stopped.Task);
        CoordinatedShutdown.Get(Context.System).AddTask(CoordinatedShutdown.PhaseServiceStop, "garden-finish-releases", async () =>
        {
            var finished = self.Ask<HostProtocol.Done>(HostProtocol.FinishReleases.Instance, Timeout.InfiniteTimeSpan);
            await Task.WhenAny(finished, stopped).ConfigureAwait(false); // a host that stopped answers nothing
            return Akka.Done.Instance;
        });
    }

    protected override void PostStop()
    {
        if (_state.Releasing.Count > 0)
            _log.Warning("stopped with {0} release(s) pending: the next start finishes them: {1}", _state.Releasing.Count,
                string.Join(", ", _state.Releasing.Keys));
        _stopped.TrySetResult();
        base.PostStop();
    }

    public static string Version { get; } =
        typeof(HostActor).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static Props Props(GardenSettings settings, ContainerEffects effects, IHostResources resources) =>
        Akka.Actor.Props.Create(() => new HostActor(settings, effects, resources));

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(ex =>
    {
        _log.Error(ex, "container actor failed");
        return Directive.Stop;
    });

    // ---- messages private to this actor ----
    private sealed record RecoveryBudgetSpent
    {
        public static readonly RecoveryBudgetSpent Instance = new();
    }

    private sealed record LeftoversPruned(Exception? Error);

    /// <summary>The release of a container that is gone ended (<paramref name="Error"/>: it failed, and is tried again).</summary>
    private sealed record ReleaseEnded(string Handle, Exception? Error);

    private sealed record RetryRelease(string Handle);

    /// <summary>A warm pool entry was made (<paramref name="Error"/>: it failed, and what was made is undone).</summary>
    private sealed record PoolEntryMade(string Name, Exception? Error);

    /// <summary>The refill delay is up: an entry is started if nothing of a user's is in flight now.</summary>
    private sealed record RefillDue
    {
        public static readonly RefillDue Instance = new();
    }

    /// <summary>A kept entry was checked in the kernel after a restart (<paramref name="Problem"/>: what it lacks, or null: whole).</summary>
    private sealed record PoolEntryChecked(string Name, string? Problem);

    /// <summary>No user's request came for garden.warm-pool.quiet-period.</summary>
    private sealed record PoolQuiet
    {
        public static readonly PoolQuiet Instance = new();
    }

    /// <summary>Time to make the next pool entry after a failed one.</summary>
    private sealed record RefillPool
    {
        public static readonly RefillPool Instance = new();
    }

    /// <summary>What a decision made off the actor's thread came to: an <see cref="Admission"/>, a
    /// <see cref="NetInReservation"/>, or the error for the client.</summary>
    private sealed record Decided(object Outcome, IActorRef ReplyTo);

    // ---- journal ----

    /// <summary>Applies one recovered record. A record this daemon cannot apply (unreadable, unknown, or one whose
    /// values do not parse) never stops the recovery: it is logged and skipped, and when it registered a container, that
    /// container is registered without what failed and starts broken with the reason.</summary>
    private void Fold(IJournalRecord record)
    {
        try
        {
            _state = _state.Apply(record);
        }
        catch (Exception e)
        {
            var reason = record is UnreadableRecord u
                ? $"host journal record {LastSequenceNr} cannot be read: {u.Reason}"
                : $"host journal record {LastSequenceNr} ({record.Descriptor.Name}) cannot be applied: {e.Message}";
            _log.Error("{0}; skipped", reason);
            if (record is ContainerRegistered r)
            {
                _state = _state with
                {
                    Containers = _state.Containers.SetItem(r.Handle, r.Incarnation),
                    NextIncarnation = Math.Max(_state.NextIncarnation, r.Incarnation + 1),
                };
                _quarantined[r.Handle] = reason;
            }
        }
    }

    /// <summary>The directory changed: List answers from it, and the metrics count it by state.</summary>
    private void Directory(ContainerDirectory directory)
    {
        _directory = directory;
        _effects.Metered.ContainersByState(ContainerCensus.Count(directory.Entries.Values.Select(e => e.Lifecycle)));
    }

    private void Record(IJournalRecord evt, Action then) => Persist(evt, e => Recorded(e, then));

    private void Recorded(IJournalRecord e, Action then)
    {
        _effects.Metered.Journaled("host", 1);
        _state = _state.Apply(e);
        if (e is PoolEntryAdded or PoolEntryReady or PoolEntryReleased or ContainerRegistered) PoolGauge();
        if (++_eventsSinceSnapshot >= _settings.SnapshotEvery)
        {
            _eventsSinceSnapshot = 0;
            SaveSnapshot(_state.ToSnapshot());
        }
        then();
    }

    /// <summary>The state the next decision sees: the journaled one with the admissions still being written applied,
    /// so the pools they took stay taken (every id, address, port and user id range is handed out once).</summary>
    private HostState DecidingState => _admitting.Count == 0 ? _state : _admitting.Aggregate(_state, (s, r) => s.Apply(r));

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _log.Error(reason, "the journal {0} cannot be read", _settings.JournalPath);
        Console.Error.WriteLine($"gardend: the journal {_settings.JournalPath} cannot be read: {reason.GetBaseException().Message}");
        base.OnRecoveryFailure(reason, message);
        CoordinatedShutdown.Get(Context.System).Run(new JournalUnreadable());
    }

    /// <summary>The reason gardend stops when its journal cannot be recovered.</summary>
    public sealed class JournalUnreadable : CoordinatedShutdown.Reason
    {
        public override int ExitCode => 3;
    }

    private void Snapshots()
    {
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("host snapshot failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    // ---- start: recovery ----

    private void OnRecovered()
    {
        _hostRecovered = _recoveryClock.Elapsed;
        Record(new DaemonStarted { Version = Version, StartedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, () =>
        {
            if (!_settings.Network.Enabled)
            {
                SpawnRecovered();
                return;
            }
            // Before any container reconciles (and before any Create): remove the firewall rules and network links that
            // belong to no container of the journal (what a crash mid-create or mid-destroy left, or containers released
            // since). Each container re-applies its own rules while it reconciles.
            var live = _state.Containers.Keys.Select(_state.RuntimeOf).Concat(_state.Pool.Keys).ToHashSet();
            var networks = _state.Networks.Select(kv => _settings.Network.For(_state.RuntimeOf(kv.Key), kv.Value)).ToList();
            var fx = _effects;
            var prefix = _settings.Network.Prefix;
            var log = _log;
            // Meanwhile the containers' actors read their journals (most of a restart's work: a snapshot and a replay
            // each); their kernel work waits for the prune (ContainerEffects.KernelWorkAfter), and what they tell this
            // actor waits in the stash.
            var pruned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            SpawnContainers(_effects with { KernelWorkAfter = pruned.Task });
            Task.Run(async () =>
            {
                var rules = await fx.Firewall.PruneAsync(live, CancellationToken.None);
                if (rules.Count > 0) log.Info("removed the firewall rules of {0} container(s) that no longer exist: {1}", rules.Count, string.Join(", ", rules));
                var links = await fx.Network.PruneAsync(prefix, networks, CancellationToken.None);
                if (links.Count > 0) log.Info("removed {0} leftover network link(s) and namespace(s): {1}", links.Count, string.Join(", ", links));
            }).ContinueWith(t =>
            {
                pruned.TrySetResult(); // whether it worked or not (as before: the error is logged and the containers reconcile)
                return new LeftoversPruned(t.IsCompletedSuccessfully ? null : t.Exception!.GetBaseException());
            }).PipeTo(Self);
            Become(() =>
            {
                Command<LeftoversPruned>(msg =>
                {
                    if (msg.Error is not null) _log.Error(msg.Error, "could not remove leftover networks");
                    SpawnRecovered();
                });
                Snapshots();
                CommandAny(_ => Stash.Stash()); // a moment: answered once recovery ends
            });
        });
    }

    /// <summary>Starts an actor for every container of the journal (each recovers its own journal, then reconciles with
    /// the kernel once <paramref name="effects"/>' <see cref="ContainerEffects.KernelWorkAfter"/> completes); once.</summary>
    private void SpawnContainers(ContainerEffects effects)
    {
        if (_spawned) return;
        _spawned = true;
        _log.Info("gardend {0} recovered {1} container(s); reconciling", Version, _state.Containers.Count);
        // their journals may be read ahead, in one query (gardend's journal does; another ignores the hint)
        if (_state.Containers.Count > 0)
        {
            _replaysHinted = true;
            JournalActor.Tell(new ReplayHints.Coming([.. _state.Containers.Select(c => HostState.PersistenceIdOf(c.Key, c.Value))]));
        }
        foreach (var (handle, incarnation) in _state.Containers)
        {
            Adopt(handle, NewChild(handle, incarnation, fresh: false, effects: effects));
            _pending.Add(handle);
        }
    }

    private bool _spawned, _replaysHinted;

    /// <summary>The journal plugin's actor, to which the host sends its <see cref="ReplayHints"/> (gardend's journal acts
    /// on them; another ignores them).</summary>
    private IActorRef JournalActor => Persistence.Instance.Apply(Context.System).JournalFor(null);

    private void SpawnRecovered()
    {
        _leftoversPruned = _recoveryClock.Elapsed;
        if (_state.Releasing.Count > 0)
            _log.Info("finishing the release of {0} container(s) an earlier gardend destroyed: {1}", _state.Releasing.Count, string.Join(", ", _state.Releasing.Keys));
        foreach (var handle in _state.Releasing.Keys) StartRelease(handle);
        // An earlier gardend's warm pool: the entries it made, of the shape this one makes, are kept, and none is handed
        // out before the kernel says it is whole (CheckPool, once serving: a restart's containers come first); those half
        // made, of another shape or beyond the size are released. (None kept was taken: a taken entry is a container of
        // the journal, its registration took it out of the pool.)
        var (kept, release) = _state.KeepPool(_settings);
        _state = kept;
        if (_state.Pool.Count > 0)
            _log.Info("warm pool an earlier gardend left: keeping {0} (once checked), releasing {1}: {2}", _state.PoolUnchecked.Count,
                release.Count, string.Join(", ", _state.Pool.Keys));
        _poolToRelease.AddRange(release); // once serving: a restart's containers come first (none is handed out before)
        SpawnContainers(_effects); // (started already while the leftovers were pruned, when the network is on)
        Timers.StartSingleTimer("recovery-budget", RecoveryBudgetSpent.Instance, _settings.RecoveryTimeout);
        Become(Recovering);
        Stash.UnstashAll(); // what came while leftovers were pruned: answered as during recovery
        if (_pending.Count == 0) FinishRecovery();
    }

    private void Recovering()
    {
        Command<HostProtocol.ContainerReady>(msg =>
        {
            (msg.Healthy ? _found.Reattached : _found.Broken).Add(msg.Handle);
            Settle(msg.Handle);
        });
        Command<HostProtocol.ContainerGone>(msg => Release(msg.Handle, () =>
        {
            _found.Released.Add(msg.Handle);
            Settle(msg.Handle);
        }));
        Command<RecoveryBudgetSpent>(_ =>
        {
            _log.Warning("recovery budget {0} spent; serving with {1} container(s) still recovering: {2}",
                _settings.RecoveryTimeout, _pending.Count, string.Join(", ", _pending));
            _found.Unfinished.AddRange(_pending);
            _pending.Clear();
            FinishRecovery();
        });
        ChildBookkeeping();
        CommandAny(_ => Sender.Tell(new Status.Failure(new GardenException(ErrorKind.Unavailable,
            $"gardend is recovering: {_state.Containers.Count - _pending.Count} of {_state.Containers.Count} containers reconciled"))));
    }

    private void Settle(string handle)
    {
        if (_pending.Remove(handle) && _pending.Count == 0) FinishRecovery();
    }

    private void FinishRecovery()
    {
        Timers.Cancel("recovery-budget");
        if (_replaysHinted) JournalActor.Tell(ReplayHints.Done.Instance); // what was not replayed goes
        _effects.Metered.Recovered(_found.Reattached.Count, _found.Broken.Count, _found.Released.Count, _found.Unfinished.Count,
            _recoveryClock.Elapsed);
        if (_found.Reattached.Count + _found.Broken.Count + _found.Released.Count + _found.Unfinished.Count == 0)
        {
            Serve();
            return;
        }
        _found.DurationMs = _recoveryClock.ElapsedMilliseconds;
        Record(_found.Clone(), Serve);
    }

    private void Serve()
    {
        PoolGauge();
        foreach (var name in _poolToRelease) ReleasePoolEntry(name);
        _poolToRelease.Clear();
        if (_settings.DestroyContainersOnStart)
            foreach (var name in _state.Pool.Keys.ToList()) ReleasePoolEntry(name);
        else CheckPool();
        if (_settings.DestroyContainersOnStart && _children.Count > 0)
        {
            _log.Info("destroy-containers-on-start: destroying {0} container(s)", _children.Count);
            foreach (var (handle, child) in _children)
            {
                _pending.Add(handle);
                child.Tell(new HostProtocol.DestroyContainer(handle));
            }
            Become(DestroyingAll);
            return;
        }
        var meanwhile = _settings.Network.Enabled ? " (the containers' journals read meanwhile)" : "";
        _log.Info("gardend {0} serving {1} container(s); recovery took {2:F0} ms: host journal {3:F0} ms, leftover networks {4:F0} ms" + meanwhile + ", containers {5:F0} ms",
            Version, _children.Count, _recoveryClock.Elapsed.TotalMilliseconds, _hostRecovered.TotalMilliseconds,
            (_leftoversPruned - _hostRecovered).TotalMilliseconds, (_recoveryClock.Elapsed - _leftoversPruned).TotalMilliseconds);
        Become(Serving);
        Stash.UnstashAll();
        _serving = true;
        MaybeRefill();
    }

    private void DestroyingAll()
    {
        Command<HostProtocol.ContainerGone>(msg => Release(msg.Handle, () =>
        {
            if (_pending.Remove(msg.Handle) && _pending.Count == 0)
            {
                _log.Info("gardend {0} serving; every earlier container destroyed", Version);
                Become(Serving);
                _serving = true;
                MaybeRefill();
            }
        }));
        Command<HostProtocol.ContainerDestroyed>(_ => { });
        Command<Status.Failure>(f => _log.Error(f.Cause, "destroy at start failed"));
        ChildBookkeeping();
        CommandAny(_ => Sender.Tell(new Status.Failure(new GardenException(ErrorKind.Unavailable,
            $"gardend is destroying earlier containers ({_pending.Count} left)"))));
    }

    // ---- serving ----

    private void Serving()
    {
        Command<HostProtocol.CreateContainer>(msg =>
        {
            UserAsked();
            if (_releasing.Contains(msg.Spec.Handle))
            {
                // its paths are the handle's: the new one is made once the old one's are removed
                if (!_awaitingRelease.TryGetValue(msg.Spec.Handle, out var waiting)) _awaitingRelease[msg.Spec.Handle] = waiting = [];
                waiting.Add((msg, Sender));
                return;
            }
            var (settings, resources) = (_settings, _resources);
            Decide(state => state.Admit(msg.Spec, settings, HostFacts.ForCreate(state, msg.Spec, settings, resources)));
        });
        Command<ContainerProtocol.NetIn>(AddNetIn);
        ServingCommands();
    }

    /// <summary>While a Create or NetIn is being decided: the next ones wait (each decision sees the pools as the one
    /// before left them); everything else is served.</summary>
    private void Deciding()
    {
        Command<Decided>(Commit);
        Command<HostProtocol.CreateContainer>(_ => Stash.Stash());
        Command<ContainerProtocol.NetIn>(_ => Stash.Stash());
        ServingCommands();
    }

    private void ServingCommands()
    {
        Command<HostProtocol.Ping>(_ => Sender.Tell(new HostProtocol.Pong(Version)));
        Command<HostProtocol.GetCapacity>(_ =>
        {
            var (resources, stateDir, max) = (_resources, _settings.StateDir, (ulong)HostState.MaxContainers(_settings));
            Task.Run(() => new HostProtocol.Capacity(resources.MemoryBytes(), resources.DiskBytes(stateDir), max)).PipeTo(Sender); // reads /proc
        });
        Command<HostProtocol.ListContainers>(msg => Sender.Tell(new HostProtocol.ContainerList(_directory.List(msg.Filter))));
        Command<IContainerCommand>(Route);
        Command<ContainerProtocol.NetInInForce>(answer => NetInAnswered(Sender, answer, null));
        Command<Status.Failure>(failure => NetInAnswered(Sender, null, failure.Cause));
        Command<HostProtocol.ContainerGone>(msg => Release(msg.Handle, () => { }));
        Command<HostProtocol.ContainerReady>(_ => { });
        ChildBookkeeping();
    }

    /// <summary>What every behaviour does with its children: their List entries, and their deaths.</summary>
    private void ChildBookkeeping()
    {
        Command<HostProtocol.ContainerChanged>(msg =>
        {
            if ((_children.TryGetValue(msg.Handle, out var child) || _starting.TryGetValue(msg.Handle, out child)) && child.Equals(Sender))
                Directory(_directory.With(msg));
            AnswerIfReleasesFinished();
            MaybeRefill(); // a Create or Destroy began (the pool yields) or ended (the pool's turn)
        });
        Command<HostProtocol.FinishReleases>(_ => FinishReleases(Sender));
        Command<Terminated>(OnTerminated);
        Command<HostProtocol.PeaChanged>(msg =>
        {
            if (msg.Running) _peas[msg.ProcessId] = msg.Handle;
            else if (_peas.TryGetValue(msg.ProcessId, out var h) && h == msg.Handle) _peas.Remove(msg.ProcessId);
        });
        Command<ReleaseEnded>(OnReleaseEnded);
        Command<PoolEntryMade>(OnPoolEntryMade);
        Command<PoolEntryChecked>(OnPoolEntryChecked);
        Command<RefillPool>(_ => MaybeRefill());
        Command<PoolQuiet>(_ => MaybeRefill());
        Command<RefillDue>(_ =>
        {
            _refillDue = !UserWorkInFlight();
            MaybeRefill();
        });
        Command<RetryRelease>(r =>
        {
            if (_state.Releasing.ContainsKey(r.Handle)) StartRelease(r.Handle);
        });
        Snapshots();
    }

    /// <summary>A bad request is InvalidArgument whichever container it names; a good one goes to its container.</summary>
    private void Route(IContainerCommand msg)
    {
        if (msg is ContainerProtocol.RunProcess or HostProtocol.DestroyContainer or ContainerProtocol.StopContainer or ContainerProtocol.SetLimits
            or ContainerProtocol.NetOut) UserAsked();
        if (Requests.Problem(msg) is { } problem) Sender.Tell(new Status.Failure(problem));
        // Metrics of a pea, asked by its process id: its container's (a pea that shares its container's limits runs its
        // process in the container's process cgroup)
        else if (msg is ContainerProtocol.GetMetrics m && !_children.ContainsKey(m.Handle) && _peas.TryGetValue(m.Handle, out var owner)
                 && _children.TryGetValue(owner, out var container))
            container.Forward(m with { Handle = owner });
        else if (!_children.TryGetValue(msg.Handle, out var child)) Sender.Tell(new Status.Failure(GardenException.UnknownHandle(msg.Handle)));
        else child.Forward(msg);
    }

    /// <summary>Runs a decision of <see cref="HostState"/> with the facts it gathers first (they ask the kernel) off the
    /// actor's thread, on the state as it is now; its outcome comes back as <see cref="Decided"/>. One at a time.</summary>
    private void Decide(Func<HostState, object> decide, IActorRef? replyTo = null)
    {
        var state = DecidingState;
        var reply = replyTo ?? Sender;
        _decidingSince = System.Diagnostics.Stopwatch.GetTimestamp();
        Task.Run(() => decide(state))
            .ContinueWith(t => new Decided(t.IsCompletedSuccessfully ? t.Result : t.Exception!.GetBaseException(), reply))
            .PipeTo(Self);
        _deciding = true;
        BecomeStacked(Deciding);
    }

    private void Commit(Decided decided)
    {
        switch (decided.Outcome)
        {
            case Admission a:
                if (_settings.WarmPoolSize > 0)
                    _effects.Metered.PoolCreate(a.PoolEntry is not null ? "pooled" : HostState.PoolProblem(a.Spec, _settings) is null ? "empty" : "ineligible");
                // Journaled without holding the next decision back (PersistAsync: Creates are admitted one after another
                // while their registrations are written, in one batch when they come together); the container starts
                // once its own is in the journal.
                var source = ContainerLog.Source(a.Spec.Handle);
                _log.Debug("[{0}] admission finished in {1:0.0} ms", source, System.Diagnostics.Stopwatch.GetElapsedTime(_decidingSince).TotalMilliseconds);
                var registering = System.Diagnostics.Stopwatch.GetTimestamp();
                _admitting.Add(a.Registered);
                // its journal is empty by construction: gardend's journal answers its recovery without a query
                JournalActor.Tell(new ReplayHints.Fresh(HostState.PersistenceIdOf(a.Spec.Handle, a.Registered.Incarnation)));
                _starting[a.Spec.Handle] = NewChild(a.Spec.Handle, a.Registered.Incarnation, fresh: true, a.PoolEntry);
                PersistAsync(a.Registered, e => Recorded(e, () =>
                {
                    _log.Debug("[{0}] journal registration finished in {1:0.0} ms", source,
                        System.Diagnostics.Stopwatch.GetElapsedTime(registering).TotalMilliseconds);
                    _admitting.Remove(a.Registered);
                    _settings.Faults.Hit("create-registered");
                    var child = _starting.Remove(a.Spec.Handle, out var started) ? started : NewChild(a.Spec.Handle, a.Registered.Incarnation, fresh: true, a.PoolEntry);
                    Adopt(a.Spec.Handle, child);
                    child.Tell(new HostProtocol.CreateContainer(a.Spec, a.PoolEntry), decided.ReplyTo);
                    // (the pool is refilled once this Create has ended: ContainerChanged)
                }));
                DecisionDone();
                break;
            case NetInReservation r when _children.TryGetValue(r.Handle, out var child) && _state.Containers.ContainsKey(r.Handle):
                Record(r.Reserved, () =>
                {
                    _netIns[r.Handle] = (r.Mapping, decided.ReplyTo);
                    child.Tell(new ContainerProtocol.ApplyNetIn(r.Handle, r.Mapping));
                    DecisionDone();
                });
                break;
            case NetInReservation r: // released while its port was being chosen
                decided.ReplyTo.Tell(new Status.Failure(GardenException.UnknownHandle(r.Handle)));
                DecisionDone();
                break;
            case Exception e:
                decided.ReplyTo.Tell(new Status.Failure(e));
                DecisionDone();
                if (e.InnerException is PoolHoldsRoom) PoolGivesWay();
                break;
        }
    }

    private void DecisionDone()
    {
        _deciding = false;
        UnbecomeStacked();
        Stash.UnstashAll();
        MaybeRefill();
    }

    // ---- NetIn: the host reserves a port, the container applies it, the host keeps or returns it ----

    private void AddNetIn(ContainerProtocol.NetIn msg) => AddNetIn(msg, Sender);

    private void AddNetIn(ContainerProtocol.NetIn msg, IActorRef replyTo)
    {
        if (Requests.Problem(msg) is { } problem)
        {
            replyTo.Tell(new Status.Failure(problem));
            return;
        }
        if (!_children.ContainsKey(msg.Handle))
        {
            replyTo.Tell(new Status.Failure(GardenException.UnknownHandle(msg.Handle)));
            return;
        }
        if (_netIns.ContainsKey(msg.Handle))
        {
            if (!_netInQueue.TryGetValue(msg.Handle, out var queue)) _netInQueue[msg.Handle] = queue = new();
            queue.Enqueue((msg, replyTo));
            return;
        }
        var (network, resources) = (_settings.Network, _resources);
        Decide(state => state.ReserveNetIn(msg.Handle, msg.HostPort, msg.ContainerPort, network,
            HostFacts.ForNetIn(state, msg.HostPort, network, resources)), replyTo);
    }

    /// <summary>A container's answer to the <see cref="ApplyNetIn"/> it was sent: the port stays reserved, or it is
    /// journaled as returned; then the client gets the answer.</summary>
    private void NetInAnswered(IActorRef child, ContainerProtocol.NetInInForce? applied, Exception? error)
    {
        if (!_handles.TryGetValue(child, out var handle) || !_netIns.Remove(handle, out var inFlight))
        {
            if (error is not null) _log.Warning("unexpected failure from {0}: {1}", child.Path, error.Message);
            return;
        }
        if (applied is not null)
        {
            inFlight.ReplyTo.Tell(applied);
            NextNetIn(handle);
            return;
        }
        var failure = new Status.Failure(error as GardenException
            ?? new GardenException(ErrorKind.Internal, $"net-in failed: {error?.Message}", error));
        if (_state.ReturnPort(handle, inFlight.Mapping.HostPort) is not { } returned)
        {
            inFlight.ReplyTo.Tell(failure);
            NextNetIn(handle);
            return;
        }
        Record(returned, () =>
        {
            inFlight.ReplyTo.Tell(failure);
            NextNetIn(handle);
        });
    }

    private void NextNetIn(string handle)
    {
        if (!_netInQueue.TryGetValue(handle, out var queue)) return;
        var (next, replyTo) = queue.Dequeue();
        if (queue.Count == 0) _netInQueue.Remove(handle);
        Self.Tell(next, replyTo);
    }

    /// <summary>A container that goes leaves no NetIn waiting: each is answered as for an unknown handle.</summary>
    private void AbandonNetIns(string handle)
    {
        if (_netIns.Remove(handle, out var inFlight))
            inFlight.ReplyTo.Tell(new Status.Failure(GardenException.UnknownHandle(handle)));
        if (_netInQueue.Remove(handle, out var queue))
            foreach (var (_, replyTo) in queue)
                replyTo.Tell(new Status.Failure(GardenException.UnknownHandle(handle)));
    }

    // ---- the warm pool: entries made ahead, the host's own until a Create takes one ----

    /// <summary>Makes the next pool entry when the pool is short (one at a time, never while a Create is decided, never
    /// while gardend stops or after a failure's wait), and gives back what the pool holds beyond its room. Low priority:
    /// an entry is started only while no user's Create is being admitted or made (it is tried again when one ends);
    /// one already being made is not stopped for a Create that comes meanwhile.</summary>
    private void MaybeRefill()
    {
        if (_settings.WarmPoolSize == 0) return;
        var quiet = !UserWorkInFlight() && !Timers.IsTimerActive("pool-quiet");
        if (quiet) _idle.Open();
        else _idle.Close();
        if (!quiet || !_serving || _stopping || _poolMaking is not null || _deciding || Timers.IsTimerActive("pool-refill")) return;
        if (_settings.WarmPoolRefillDelay > TimeSpan.Zero && !_refillDue)
        {
            if (!Timers.IsTimerActive("pool-idle")) Timers.StartSingleTimer("pool-idle", RefillDue.Instance, _settings.WarmPoolRefillDelay);
            return;
        }
        _refillDue = false;
        var state = DecidingState;
        // a user's Create (not served by the pool) always finds a free place under max-containers
        if (state.Containers.Count + state.Pool.Count + 1 > HostState.MaxContainers(_settings) && state.ReadyPoolEntry() is { } surplus)
        {
            ReleasePoolEntry(surplus);
            return;
        }
        if (state.PlanPoolEntry(_settings) is not { } added) return;
        _poolMaking = added.Name;
        Record(added, () => MakePoolEntry(added.Name));
    }

    /// <summary>The pool as the metrics show it (garden_warm_pool).</summary>
    private void PoolGauge()
    {
        if (_settings.WarmPoolSize == 0 && _state.Pool.Count == 0) return;
        _effects.Metered.WarmPool(_settings.WarmPoolSize, _state.Pool.Count, _state.Pool.Count(e => e.Value && !_state.PoolUnchecked.Contains(e.Key)));
    }

    /// <summary>A user asked for work the pool yields to: entries being made pause (<see cref="IdleGate"/>) until it is
    /// done and garden.warm-pool.quiet-period passed without another.</summary>
    private void UserAsked()
    {
        if (_settings.WarmPoolSize == 0) return;
        _idle.Close();
        // a client's next request of a sequence (Create, Run, Destroy) comes within it
        if (_settings.WarmPoolQuietPeriod > TimeSpan.Zero) Timers.StartSingleTimer("pool-quiet", PoolQuiet.Instance, _settings.WarmPoolQuietPeriod);
    }

    /// <summary>A user's Create being admitted or made, or a Destroy or a release running: the pool waits for them.</summary>
    private bool UserWorkInFlight() =>
        _admitting.Count > 0 || _releasing.Count > 0
        || _directory.Entries.Values.Any(e => e.Lifecycle is ContainerLifecycle.Creating or ContainerLifecycle.Destroying or ContainerLifecycle.Destroyed);

    private void MakePoolEntry(string name)
    {
        var spec = _state.PoolEntrySpec(name, _settings);
        var paths = ContainerPaths.For(_settings, name);
        var log = ContainerLog.For(Context.System, name);
        var idle = _idle;
        var k = new KernelContext(name, paths, _effects, _effects.Agents.Connect(paths.AgentSocket), _settings, log)
        {
            BeforeStep = idle.WaitAsync,
        };
        log.Info("warm pool: making an entry (network {0}, user ids {1})", spec.Network?.Address.ToString() ?? "none",
            _state.IdBlocks.TryGetValue(name, out var ids) ? ids.ToString() : "garden");
        Task.Run(() => k.Step("pool entry", () => new ContainerCreator(k, new ContainerDestroyer(k)).CreateAsync(spec)))
            .ContinueWith(t => new PoolEntryMade(name, t.IsCompletedSuccessfully ? null : t.Exception!.GetBaseException()))
            .PipeTo(Self);
    }

    private void OnPoolEntryMade(PoolEntryMade made)
    {
        if (_poolMaking == made.Name) _poolMaking = null;
        if (made.Error is not null)
        {
            // what was made is undone by the creator; the release returns what it held to the pools
            var wait = TimeSpan.FromSeconds(Math.Min(300, 5 * Math.Pow(2, Math.Min(_poolFailures++, 6))));
            ContainerLog.For(Context.System, made.Name).Error(made.Error, "warm pool: making the entry failed; the next try in {0}", wait);
            Timers.StartSingleTimer("pool-refill", RefillPool.Instance, wait);
            ReleasePoolEntry(made.Name);
            return;
        }
        _poolFailures = 0;
        if (!_state.Pool.ContainsKey(made.Name) || _stopping)
        {
            ReleasePoolEntry(made.Name);
            AnswerIfReleasesFinished();
            return;
        }
        Record(new PoolEntryReady { Name = made.Name }, () =>
        {
            ContainerLog.For(Context.System, made.Name).Info("warm pool: entry ready ({0} of {1})", _state.Pool.Count(e => e.Value), _settings.WarmPoolSize);
            AnswerIfReleasesFinished();
            MaybeRefill();
        });
    }

    /// <summary>After a restart: checks each kept entry off the actor's thread as a container is reconciled (runc knows
    /// it, its init runs, its agent answers, its rootfs, cgroup and network are there, its firewall chain is put back if
    /// missing); the answers come back as <see cref="PoolEntryChecked"/>.</summary>
    private void CheckPool()
    {
        foreach (var name in _state.PoolUnchecked)
        {
            var paths = ContainerPaths.For(_settings, name);
            var log = ContainerLog.For(Context.System, name);
            var k = new KernelContext(name, paths, _effects, _effects.Agents.Connect(paths.AgentSocket), _settings, log);
            var check = new Effect.Reconcile(paths.Rootfs.MountPoint, _state.Networks.GetValueOrDefault(name), [], [], Watch: false);
            Task.Run(() => new ContainerReconciler(k).ReconcileAsync(check))
                .ContinueWith(t => new PoolEntryChecked(name, t.IsCompletedSuccessfully ? t.Result.Problem : $"the check failed: {t.Exception!.GetBaseException().Message}"))
                .PipeTo(Self);
        }
    }

    private void OnPoolEntryChecked(PoolEntryChecked msg)
    {
        if (!_state.PoolUnchecked.Contains(msg.Name)) return; // taken out of the pool meanwhile (released)
        var log = ContainerLog.For(Context.System, msg.Name);
        if (msg.Problem is null)
        {
            _state = _state.PoolEntryChecked(msg.Name);
            PoolGauge();
            log.Info("warm pool: entry kept across the restart, ready ({0} of {1})", _state.Pool.Count(e => e.Value && !_state.PoolUnchecked.Contains(e.Key)), _settings.WarmPoolSize);
            MaybeRefill();
            return;
        }
        log.Warning("warm pool: entry not kept across the restart: {0}; releasing it", msg.Problem);
        ReleasePoolEntry(msg.Name);
    }

    /// <summary>A Create was refused because the pool holds what it needs: the oldest ready entry is given back.</summary>
    private void PoolGivesWay()
    {
        if (_state.ReadyPoolEntry() is { } entry) ReleasePoolEntry(entry);
    }

    /// <summary>Journals that an untaken entry leaves the pool and releases it (pending under its name, as a destroyed
    /// container's release is: a restart finishes it). The one being made is released once it is made.</summary>
    private void ReleasePoolEntry(string name)
    {
        if (name == _poolMaking || _state.ReleasePoolEntry(name) is not { } released) return;
        Record(released, () => StartRelease(name));
    }

    // ---- children ----

    private void Spawn(string handle, long incarnation, bool fresh) => Adopt(handle, NewChild(handle, incarnation, fresh));

    private IActorRef NewChild(string handle, long incarnation, bool fresh, string? runtimeName = null, ContainerEffects? effects = null)
    {
        runtimeName ??= _state.Runtimes.GetValueOrDefault(handle);
        // The actor's name never throws, whatever the handle: one an earlier build let into the journal gets an actor too,
        // which reports itself broken and can be destroyed.
        var child = Context.ActorOf(ContainerActor.Props(handle, incarnation, fresh, _settings, effects ?? _effects, _quarantined.GetValueOrDefault(handle), runtimeName),
            $"{Names.ActorName(handle)}~{incarnation}");
        Context.Watch(child);
        return child;
    }

    /// <summary>From now on its requests go to it.</summary>
    private void Adopt(string handle, IActorRef child)
    {
        _children[handle] = child;
        _handles[child] = handle;
    }

    /// <summary>Journals that the handle is free, stops its actor, and starts releasing what the container still holds
    /// (pending in the journal: a restart finishes it).</summary>
    private void Release(string handle, Action then)
    {
        foreach (var pea in _peas.Where(p => p.Value == handle).Select(p => p.Key).ToList()) _peas.Remove(pea);
        if (_state.Release(handle) is not { } released)
        {
            then();
            return;
        }
        Record(released, () =>
        {
            StartRelease(handle);
            MaybeRefill(); // (the pool yields to the release)
            if (_children.Remove(handle, out var child))
            {
                _handles.Remove(child);
                Context.Stop(child);
            }
            _respawns.Remove(handle);
            Directory(_directory.Without(handle));
            AbandonNetIns(handle);
            then();
        });
    }

    /// <summary>Releases, off the actor's thread, what a container that is gone still holds (<see cref="ContainerDestroyer.ReleaseAsync"/>,
    /// idempotent); its end comes back as <see cref="ReleaseEnded"/>.</summary>
    private void StartRelease(string handle)
    {
        if (!_releasing.Add(handle)) return;
        var name = _state.RuntimeOf(handle);
        var paths = ContainerPaths.For(_settings, name);
        var log = ContainerLog.For(Context.System, handle);
        var k = new KernelContext(handle, paths, _effects, _effects.Agents.Connect(paths.AgentSocket), _settings, log) { Name = name };
        var network = _state.Networks.GetValueOrDefault(handle);
        var faults = _settings.Faults;
        // A warm pool entry still runs when it was never taken, or when gardend died after a Create took it and before
        // the container journaled its Create (its actor then has nothing to undo): it is stopped first, idempotently (a
        // container's actor stopped its own before it was gone).
        // (not one whose own actor stopped it in its Destroy: runc deleted it, and stopping it again is runc calls for nothing)
        var pool = HostState.IsPoolName(name)
                   && !(_directory.Entries.TryGetValue(handle, out var entry) && entry.Lifecycle == ContainerLifecycle.Destroyed);
        Task.Run(async () =>
            {
                faults.Hit("release-started");
                if (pool) await k.Step("release", () => new ContainerDestroyer(k).DestroyAsync(graceful: false, network)).ConfigureAwait(false);
                else await k.Step("release", () => new ContainerDestroyer(k).ReleaseAsync(network)).ConfigureAwait(false);
            })
            .ContinueWith(t => new ReleaseEnded(handle, t.IsCompletedSuccessfully ? null : t.Exception!.GetBaseException()))
            .PipeTo(Self);
    }

    /// <summary>gardend is stopping (<see cref="HostProtocol.FinishReleases"/>): every pending release runs now, and
    /// <paramref name="replyTo"/> hears once they all ended and no destroy is in flight.</summary>
    private void FinishReleases(IActorRef replyTo)
    {
        _stopping = true;
        _finishWaiters.Add(replyTo);
        // The warm pool is gardend's own, not a user's: a gardend stopped (for good, maybe) leaves nothing of it; the
        // next start makes it again, at low priority (one being made goes when it is made). A kill -9 keeps it: the next
        // start checks and keeps it (KeepPool, CheckPool), beside the reattach of the containers.
        foreach (var name in _state.Pool.Keys.ToList()) ReleasePoolEntry(name);
        foreach (var handle in _state.Releasing.Keys.Where(h => !_releasing.Contains(h)).ToList())
        {
            Timers.Cancel("release-" + handle); // not minutes from now: gardend is about to exit
            StartRelease(handle);
        }
        var destroying = Destroying().ToList();
        if (_state.Releasing.Count + destroying.Count > 0)
            _log.Info("stopping: finishing {0} release(s) and {1} destroy(s) first: {2}", _state.Releasing.Count, destroying.Count,
                string.Join(", ", _state.Releasing.Keys.Concat(destroying)));
        AnswerIfReleasesFinished();
    }

    /// <summary>Containers being destroyed, or destroyed and not yet released (their ContainerGone on its way).</summary>
    private IEnumerable<string> Destroying() =>
        _directory.Entries.Where(e => e.Value.Lifecycle is ContainerLifecycle.Destroying or ContainerLifecycle.Destroyed).Select(e => e.Key);

    private void AnswerIfReleasesFinished()
    {
        if (_finishWaiters.Count == 0 || _state.Releasing.Count > 0 || Destroying().Any() || _poolMaking is not null || _state.Pool.Count > 0) return;
        foreach (var waiter in _finishWaiters) waiter.Tell(HostProtocol.Done.Instance);
        _finishWaiters.Clear();
    }

    private void OnReleaseEnded(ReleaseEnded ended)
    {
        _releasing.Remove(ended.Handle);
        if (ended.Error is not null)
        {
            // what it holds of the pools stays taken; a Create of its handle is refused until it is released
            var failures = _releaseFailures[ended.Handle] = _releaseFailures.GetValueOrDefault(ended.Handle) + 1;
            var wait = _stopping ? TimeSpan.FromSeconds(1) : ReleaseRetry(failures);
            ContainerLog.For(Context.System, ended.Handle).Error(ended.Error, "release failed ({0} time(s)); trying again in {1}", failures, wait);
            TakeUpCreatesAwaiting(ended.Handle); // refused now (Unavailable), not held until the retry
            Timers.StartSingleTimer("release-" + ended.Handle, new RetryRelease(ended.Handle), wait);
            return;
        }
        _releaseFailures.Remove(ended.Handle);
        if (_state.ReleaseDone(ended.Handle) is not { } done) return;
        Record(done, () =>
        {
            TakeUpCreatesAwaiting(ended.Handle);
            AnswerIfReleasesFinished();
            MaybeRefill();
        });
    }

    /// <summary>The Creates of <paramref name="handle"/> held while its release ran are decided again, as they came.</summary>
    private void TakeUpCreatesAwaiting(string handle)
    {
        if (_awaitingRelease.Remove(handle, out var waiting))
            foreach (var (request, replyTo) in waiting) Self.Tell(request, replyTo);
    }

    /// <summary>5 s after the first failure, twice as long after each next one, at most 5 min.</summary>
    private static TimeSpan ReleaseRetry(int failures) => TimeSpan.FromSeconds(Math.Min(300, 5 * Math.Pow(2, Math.Min(failures - 1, 10))));

    private void OnTerminated(Terminated t)
    {
        if (!_handles.Remove(t.ActorRef, out var handle))
        {
            // released (stopped by us), or one still starting, which is started again when its registration is written
            foreach (var (h, _) in _starting.Where(s => s.Value.Equals(t.ActorRef)).ToList()) _starting.Remove(h);
            return;
        }
        _children.Remove(handle);
        // A NetIn it was applying is answered with an error; its port stays reserved (whether the container journaled the
        // mapping before it stopped is not known here) and is given back with the container.
        if (_netIns.Remove(handle, out var inFlight))
            inFlight.ReplyTo.Tell(new Status.Failure(new GardenException(ErrorKind.Internal,
                $"container {handle} stopped while applying net-in {inFlight.Mapping}; see its info")));
        if (!_state.Containers.TryGetValue(handle, out var incarnation)) return;
        var attempts = _respawns.GetValueOrDefault(handle) + 1;
        _respawns[handle] = attempts;
        if (attempts > MaxRespawns)
        {
            ContainerLog.For(Context.System, handle).Error(null, "container actor stopped {0} times; leaving it down until gardend restarts", MaxRespawns);
            Directory(_directory.Without(handle));
            AbandonNetIns(handle);
            return;
        }
        ContainerLog.For(Context.System, handle).Warning("container actor stopped unexpectedly; recovering it from its journal");
        Spawn(handle, incarnation, fresh: false);
        NextNetIn(handle);
    }
}
