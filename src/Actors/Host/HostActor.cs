using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Garden.Actors.Container;
using Garden.Linux.Host;
using Garden.Protocol.Journal;

namespace Garden.Actors.Host;

/// <summary>The root of the tree (persistence id "host"): the registry of handles and the incarnation of each
/// container's journal, capacity, and the router of every container request.
/// Start: recover the registry, record this daemon's version, start every ContainerActor (each recovers and reconciles
/// itself), and answer Unavailable until all are ready or the recovery budget is spent.
/// Supervision: a ContainerActor that throws is stopped, never restarted in place; if it stopped without being gone
/// (a journal write failed, a bug), it is started again from its journal, which reconciles it with the kernel.</summary>
public sealed class HostActor : ReceivePersistentActor, IWithTimers
{
    public ITimerScheduler Timers { get; set; } = null!;

    private const int MaxRespawns = 3;

    private readonly GardenSettings _settings;
    private readonly ContainerEffects _effects;
    private readonly IHostResources _resources;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _children = new();
    private readonly Dictionary<IActorRef, string> _handles = new();
    private readonly Dictionary<string, int> _respawns = new();
    private readonly HashSet<string> _pending = new();
    /// <summary>Containers whose host record could not be applied: each is started broken, with the reason.</summary>
    private readonly Dictionary<string, string> _quarantined = new();
    private readonly RecoveryFinished _found = new() { DaemonVersion = Version };
    private readonly System.Diagnostics.Stopwatch _recoveryClock = System.Diagnostics.Stopwatch.StartNew();
    private HostState _state = HostState.Empty;
    private int _eventsSinceSnapshot;
    private readonly NetworkPool _pool;
    private readonly UserIdPool _ids;

    /// <summary>Most containers at once: the configured maximum, and no more than the subnet pool holds. (A per-container
    /// user id pool limits unprivileged containers only: its own error says when it is empty.)</summary>
    private int MaxContainers => _settings.Network.Enabled ? Math.Min(_settings.MaxContainers, _settings.Network.PoolCapacity) : _settings.MaxContainers;

    public HostActor(GardenSettings settings, ContainerEffects effects, IHostResources resources)
    {
        _settings = settings;
        _effects = effects;
        _resources = resources;
        _pool = new NetworkPool(settings.Network);
        _ids = new UserIdPool(settings.UserNamespace);

        Recover<SnapshotOffer>(o => _state = _state.Apply((HostSnapshot)o.Snapshot));
        Recover<IJournalRecord>(Fold);
        Recover<RecoveryCompleted>(_ => OnRecovered());
    }

    public override string PersistenceId => "host";

    public static string Version { get; } =
        typeof(HostActor).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    public static Props Props(GardenSettings settings, ContainerEffects effects, IHostResources resources) =>
        Akka.Actor.Props.Create(() => new HostActor(settings, effects, resources));

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(ex =>
    {
        _log.Error(ex, "container actor failed");
        return Directive.Stop;
    });

    private sealed record RecoveryBudgetSpent
    {
        public static readonly RecoveryBudgetSpent Instance = new();
    }

    private sealed record LeftoversPruned(Exception? Error);

    private sealed record NetInFinished(string Handle, int HostPort, object Result, IActorRef ReplyTo);

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

    private void Journal(IJournalRecord evt, Action then) => Persist(evt, e =>
    {
        _state = _state.Apply(e);
        if (++_eventsSinceSnapshot >= _settings.SnapshotEvery)
        {
            _eventsSinceSnapshot = 0;
            SaveSnapshot(_state.ToSnapshot());
        }
        then();
    });

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

    private void OnRecovered()
    {
        Journal(new DaemonStarted { Version = Version, StartedUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() }, () =>
        {
            if (!_settings.Network.Enabled)
            {
                SpawnRecovered();
                return;
            }
            // Before any container reconciles (and before any Create): remove the firewall rules and network links that
            // belong to no container of the journal (what a crash mid-create or mid-destroy left, or containers released
            // since). Each container re-applies its own rules while it reconciles.
            var live = _state.Containers.Keys.ToHashSet();
            var networks = _state.Networks.Select(kv => _settings.Network.For(kv.Key, kv.Value)).ToList();
            var fx = _effects;
            var prefix = _settings.Network.Prefix;
            var log = _log;
            Task.Run(async () =>
            {
                var rules = await fx.Firewall.PruneAsync(live, CancellationToken.None);
                if (rules.Count > 0) log.Info("removed the firewall rules of {0} container(s) that no longer exist: {1}", rules.Count, string.Join(", ", rules));
                var links = await fx.Network.PruneAsync(prefix, networks, CancellationToken.None);
                if (links.Count > 0) log.Info("removed {0} leftover network link(s) and namespace(s): {1}", links.Count, string.Join(", ", links));
            }).ContinueWith(t => new LeftoversPruned(t.IsCompletedSuccessfully ? null : t.Exception!.GetBaseException())).PipeTo(Self);
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

    private void SpawnRecovered()
    {
        {
            _log.Info("gardend {0} recovered {1} container(s); reconciling", Version, _state.Containers.Count);
            foreach (var (handle, incarnation) in _state.Containers)
            {
                Spawn(handle, incarnation, fresh: false);
                _pending.Add(handle);
            }
            Timers.StartSingleTimer("recovery-budget", RecoveryBudgetSpent.Instance, _settings.RecoveryTimeout);
            Become(Recovering);
            Stash.UnstashAll(); // what came while leftovers were pruned: answered as during recovery
            if (_pending.Count == 0) FinishRecovery();
        }
    }

    private void Recovering()
    {
        Command<ContainerReady>(msg =>
        {
            (msg.Healthy ? _found.Reattached : _found.Broken).Add(msg.Handle);
            Settle(msg.Handle);
        });
        Command<ContainerGone>(msg => Release(msg.Handle, () =>
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
        Command<Terminated>(OnTerminated);
        Snapshots();
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
        if (_found.Reattached.Count + _found.Broken.Count + _found.Released.Count + _found.Unfinished.Count == 0)
        {
            Serve();
            return;
        }
        _found.DurationMs = _recoveryClock.ElapsedMilliseconds;
        Journal(_found.Clone(), Serve);
    }

    private void Serve()
    {
        if (_settings.DestroyContainersOnStart && _children.Count > 0)
        {
            _log.Info("destroy-containers-on-start: destroying {0} container(s)", _children.Count);
            foreach (var (handle, child) in _children)
            {
                _pending.Add(handle);
                child.Tell(new DestroyContainer(handle));
            }
            Become(DestroyingAll);
            return;
        }
        _log.Info("gardend {0} serving {1} container(s)", Version, _children.Count);
        Become(Serving);
        Stash.UnstashAll();
    }

    private void DestroyingAll()
    {
        Command<ContainerGone>(msg => Release(msg.Handle, () =>
        {
            if (_pending.Remove(msg.Handle) && _pending.Count == 0)
            {
                _log.Info("gardend {0} serving; every earlier container destroyed", Version);
                Become(Serving);
            }
        }));
        Command<ContainerDestroyed>(_ => { });
        Command<Status.Failure>(f => _log.Error(f.Cause, "destroy at start failed"));
        Command<Terminated>(OnTerminated);
        Snapshots();
        CommandAny(_ => Sender.Tell(new Status.Failure(new GardenException(ErrorKind.Unavailable,
            $"gardend is destroying earlier containers ({_pending.Count} left)"))));
    }

    private void Serving()
    {
        Command<Ping>(_ => Sender.Tell(new Pong(Version)));
        Command<GetCapacity>(_ => Sender.Tell(new Capacity(_resources.MemoryBytes(), _resources.DiskBytes(_settings.StateDir),
            (ulong)MaxContainers)));
        Command<CreateContainer>(Create);
        Command<NetIn>(AddNetIn);
        Command<NetInFinished>(NetInFinished_);
        Command<ListContainers>(List);
        Command<BulkInfo>(BulkInfo);
        Command<BulkMetrics>(BulkMetrics);
        Command<IContainerCommand>(Route);
        Command<ContainerGone>(msg => Release(msg.Handle, () => { }));
        Command<ContainerReady>(_ => { });
        Command<Terminated>(OnTerminated);
        Snapshots();
    }

    private void Snapshots()
    {
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("host snapshot failed: {0}", f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    private void Spawn(string handle, long incarnation, bool fresh)
    {
        // The actor's name never throws, whatever the handle: one an earlier build let into the journal gets an actor too,
        // which reports itself broken and can be destroyed.
        var child = Context.ActorOf(ContainerActor.Props(handle, incarnation, fresh, _settings, _effects, _quarantined.GetValueOrDefault(handle)),
            $"{Names.ActorName(handle)}~{incarnation}");
        Context.Watch(child);
        _children[handle] = child;
        _handles[child] = handle;
    }

    /// <summary>Journals that the handle is free, then stops its actor.</summary>
    private void Release(string handle, Action then)
    {
        if (!_state.Containers.ContainsKey(handle))
        {
            then();
            return;
        }
        Journal(new ContainerReleased { Handle = handle }, () =>
        {
            if (_children.Remove(handle, out var child))
            {
                _handles.Remove(child);
                Context.Stop(child);
            }
            _respawns.Remove(handle);
            then();
        });
    }

    private void OnTerminated(Terminated t)
    {
        if (!_handles.Remove(t.ActorRef, out var handle)) return; // released: stopped by us
        _children.Remove(handle);
        if (!_state.Containers.TryGetValue(handle, out var incarnation)) return;
        var attempts = _respawns.GetValueOrDefault(handle) + 1;
        _respawns[handle] = attempts;
        if (attempts > MaxRespawns)
        {
            _log.Error("[{0}] container actor stopped {1} times; leaving it down until gardend restarts", handle, MaxRespawns);
            return;
        }
        _log.Warning("[{0}] container actor stopped unexpectedly; recovering it from its journal", handle);
        Spawn(handle, incarnation, fresh: false);
    }

    private void Create(CreateContainer msg)
    {
        var spec = msg.Spec;
        IdBlock? idBlock;
        try
        {
            if (spec.Handle.Length == 0) spec = spec with { Handle = Names.Generate() };
            Names.Validate("handle", spec.Handle);
            if (spec.Rootfs.Length == 0) spec = spec with { Rootfs = _settings.DefaultRootfs };
            foreach (var e in spec.Env)
                if (!e.Contains('=') || e.StartsWith('=')) throw GardenException.Invalid("env", $"\"{e}\" is not KEY=VALUE");
            if (spec.LimitsOrNone.Problem() is { } problem) throw problem;
            spec = spec with { Limits = _settings.DefaultLimits.With(spec.LimitsOrNone) }; // garden.default-limits, where it names none
            spec = spec with { BindMounts = ResolvedBindMounts(spec) };
            spec = spec with { GraceTime = spec.GraceTime ?? _settings.DefaultGraceTime };
            if (GraceTime.Problem(spec.GraceTime.Value) is { } graceProblem) throw graceProblem;
            if (_state.Containers.ContainsKey(spec.Handle) || _children.ContainsKey(spec.Handle))
                throw new GardenException(ErrorKind.AlreadyExists, $"handle already exists: {spec.Handle}");
            if (_state.Containers.Count >= MaxContainers)
                throw new GardenException(ErrorKind.ResourceExhausted, MaxContainers < _settings.MaxContainers
                    ? $"max containers reached ({MaxContainers}, what the subnet pool {_settings.Network.Pool} holds); destroy one or configure a larger garden.network.pool"
                    : $"max containers reached ({MaxContainers}); destroy one or raise garden.max-containers");
            spec = WithNetwork(spec);
            (var mapping, idBlock) = _ids.Allocate(_state, spec.Privileged);
            spec = spec with { UserNamespace = mapping };
        }
        catch (GardenException e)
        {
            Sender.Tell(new Status.Failure(e));
            return;
        }
        var replyTo = Sender;
        var incarnation = _state.NextIncarnation;
        var registered = new ContainerRegistered { Handle = spec.Handle, Incarnation = incarnation };
        if (spec.Network is not null) registered.Network = HostState.ToRecord(spec.Network);
        registered.Ports.AddRange(spec.NetInOrEmpty.Select(m => (uint)m.HostPort));
        if (idBlock is { } block) registered.IdRange = HostState.ToRecord(block);
        Journal(registered, () =>
        {
            _settings.Faults.Hit("create-registered");
            Spawn(spec.Handle, incarnation, fresh: true);
            _children[spec.Handle].Tell(new CreateContainer(spec), replyTo);
        });
    }

    /// <summary>The spec's bind mounts, checked (see <see cref="BindMount.Problem"/>) and with each source resolved to the
    /// path that was checked, which is the one mounted.</summary>
    private ImmutableArray<BindMount> ResolvedBindMounts(ContainerSpec spec)
    {
        var mounts = spec.BindMountsOrEmpty;
        if (mounts.IsEmpty) return mounts;
        var hostOnly = _settings.HostOnlyPaths.Select(p => _resources.ResolvePath(p) ?? Path.GetFullPath(p)).ToList();
        var resolved = ImmutableArray.CreateBuilder<BindMount>(mounts.Length);
        foreach (var (mount, i) in mounts.Select((m, i) => (m, i)))
        {
            if (mount.Problem(i, _resources.ResolvePath, hostOnly) is { } mountProblem) throw mountProblem;
            resolved.Add(mount with { Source = _resources.ResolvePath(mount.Source)! });
        }
        return resolved.MoveToImmutable();
    }

    /// <summary>The spec with its network taken from the pools: an address, and a host port for each NetIn.</summary>
    private ContainerSpec WithNetwork(ContainerSpec spec)
    {
        var asks = spec.NetworkRequest.Length > 0 || !spec.NetInOrEmpty.IsEmpty || !spec.NetOutOrEmpty.IsEmpty || spec.LimitsOrNone.BandwidthRate is not null;
        if (!_settings.Network.Enabled)
        {
            if (asks) throw GardenException.Invalid("network", "networking is disabled on this daemon (garden.network.enabled = off)");
            return spec;
        }
        foreach (var m in spec.NetInOrEmpty) NetworkPool.ValidateContainerPort(m.ContainerPort);
        try
        {
            foreach (var r in spec.NetOutOrEmpty) r.Validated();
        }
        catch (Linux.Network.NetworkSpecException e)
        {
            throw GardenException.Invalid($"net-out {e.Field}", e.Problem);
        }
        var allocation = _pool.Allocate(_state, spec.NetworkRequest);
        var ports = _pool.TakePorts(_state, spec.NetInOrEmpty.Select(m => m.HostPort), _resources.TcpPortInUse);
        return spec with
        {
            Network = allocation,
            NetIn = [.. spec.NetInOrEmpty.Select((m, i) => m with { HostPort = ports[i] })],
        };
    }

    /// <summary>NetIn: the host port comes from the host's pool (journaled before the container applies it, given back
    /// if it fails), then the container applies the DNAT.</summary>
    private void AddNetIn(NetIn msg)
    {
        if (!_children.TryGetValue(msg.Handle, out var child))
        {
            Sender.Tell(new Status.Failure(GardenException.UnknownHandle(msg.Handle)));
            return;
        }
        int port;
        try
        {
            if (!_state.Networks.ContainsKey(msg.Handle))
                throw new GardenException(ErrorKind.FailedPrecondition, $"container {msg.Handle} has no network");
            NetworkPool.ValidateContainerPort(msg.ContainerPort);
            port = _pool.TakePorts(_state, [msg.HostPort], _resources.TcpPortInUse)[0];
        }
        catch (GardenException e)
        {
            Sender.Tell(new Status.Failure(e));
            return;
        }
        var replyTo = Sender;
        var reserved = new PortsReserved { Handle = msg.Handle };
        reserved.Ports.Add((uint)port);
        var timeout = _settings.AskTimeout;
        Journal(reserved, () =>
            child.Ask(new ApplyNetIn(msg.Handle, new Linux.Network.PortMapping(port, msg.ContainerPort)), timeout)
                .ContinueWith(t => new NetInFinished(msg.Handle, port, t.IsCompletedSuccessfully ? t.Result : t.Exception!.GetBaseException(), replyTo))
                .PipeTo(Self));
    }

    private void NetInFinished_(NetInFinished msg)
    {
        if (msg.Result is NetInInForce)
        {
            msg.ReplyTo.Tell(msg.Result);
            return;
        }
        var error = msg.Result as GardenException ?? new GardenException(ErrorKind.Internal, $"net-in failed: {(msg.Result as Exception)?.Message ?? msg.Result}");
        if (!_state.Containers.ContainsKey(msg.Handle))
        {
            msg.ReplyTo.Tell(new Status.Failure(error));
            return;
        }
        var returned = new PortsReturned { Handle = msg.Handle };
        returned.Ports.Add((uint)msg.HostPort);
        Journal(returned, () => msg.ReplyTo.Tell(new Status.Failure(error)));
    }

    private void Route(IContainerCommand msg)
    {
        if (_children.TryGetValue(msg.Handle, out var child)) child.Forward(msg);
        else Sender.Tell(new Status.Failure(GardenException.UnknownHandle(msg.Handle)));
    }

    private void List(ListContainers msg)
    {
        var timeout = _settings.AskTimeout;
        var asks = _children.Select(c => c.Value.Ask<ContainerSummary>(new GetSummary(c.Key), timeout)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null)).ToList();
        Task.WhenAll(asks).ContinueWith(t => (object)new ContainerList(t.Result
                .Where(s => s is not null && s.State is not (ContainerLifecycle.Creating or ContainerLifecycle.Destroying or ContainerLifecycle.Destroyed))
                .Where(s => msg.Filter.All(kv => s!.Properties.TryGetValue(kv.Key, out var v) && v == kv.Value))
                .Select(s => s!.Handle).Order(StringComparer.Ordinal).ToImmutableArray()))
            .PipeTo(Sender);
    }

    private void BulkMetrics(BulkMetrics msg) =>
        AskEach<ContainerMetrics>(msg.Handles, h => new GetMetrics(h))
            .ContinueWith(t => (object)new BulkMetricsResult(t.Result.Ok, t.Result.Errors)).PipeTo(Sender);

    /// <summary>Asks each named container; per handle the answer or the error it got.</summary>
    private Task<(ImmutableDictionary<string, T> Ok, ImmutableDictionary<string, GardenException> Errors)> AskEach<T>(
        IEnumerable<string> handles, Func<string, object> message)
    {
        var timeout = _settings.AskTimeout;
        var asks = handles.Distinct().Select(async h =>
        {
            if (!_children.TryGetValue(h, out var c)) return (h, default(T), GardenException.UnknownHandle(h));
            try
            {
                return (h, await c.Ask<T>(message(h), timeout), (GardenException?)null);
            }
            catch (Exception e)
            {
                return (h, default(T), e as GardenException ?? new GardenException(ErrorKind.Internal, e.Message, e));
            }
        }).ToList();
        return Task.WhenAll(asks).ContinueWith(t => (
            t.Result.Where(r => r.Item3 is null).ToImmutableDictionary(r => r.h, r => r.Item2!),
            t.Result.Where(r => r.Item3 is not null).ToImmutableDictionary(r => r.h, r => r.Item3!)));
    }

    private void BulkInfo(BulkInfo msg) =>
        AskEach<ContainerInfo>(msg.Handles, h => new GetInfo(h))
            .ContinueWith(t => (object)new BulkInfoResult(t.Result.Ok, t.Result.Errors)).PipeTo(Sender);
}
