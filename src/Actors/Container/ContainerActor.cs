using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Linux.Agent;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Protocol.Agent;

namespace Garden.Actors.Container;

/// <summary>One container: its lifecycle state machine (Creating → Active ⇄ Stopped → Destroying), its properties,
/// and one ProcessActor child per process. Linux work runs off the actor thread and comes back as messages.</summary>
public sealed class ContainerActor : ReceiveActor, IWithUnboundedStash
{
    private readonly GardenSettings _settings;
    private readonly ContainerEffects _fx;
    private readonly ContainerPaths _paths;
    private readonly IAgentClient _agent;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private ContainerState _state;
    private readonly List<IActorRef> _destroyWaiters = [];

    public IStash Stash { get; set; } = null!;

    public ContainerActor(string handle, GardenSettings settings, ContainerEffects effects)
    {
        _settings = settings;
        _fx = effects;
        _state = ContainerState.Empty(handle);
        _paths = ContainerPaths.For(settings, handle);
        _agent = effects.Agents.Connect(_paths.AgentSocket);
        Become(Initial);
    }

    public static Props Props(string handle, GardenSettings settings, ContainerEffects effects) =>
        Akka.Actor.Props.Create(() => new ContainerActor(handle, settings, effects));

    private string Handle => _state.Handle;

    // ---- messages private to this actor ----
    private sealed record CreateFinished(string Rootfs, IActorRef ReplyTo);
    private sealed record CreateFailed(Exception Error, IActorRef ReplyTo);
    private sealed record StopFinished(IActorRef ReplyTo);
    private sealed record DestroyFinished(Exception? Error);
    private sealed record InfoReady(ImmutableArray<string> ProcessIds, IActorRef ReplyTo);
    private sealed record AttachResolved(AttachProcess Request, bool Known, IActorRef ReplyTo);

    // ---- states ----
    private void Initial()
    {
        Receive<CreateContainer>(msg =>
        {
            var spec = msg.Spec;
            var replyTo = Sender;
            _log.Info("[{0}] create starting (rootfs {1})", Handle, spec.Rootfs);
            CreateAsync(spec).ContinueWith(t => t.IsCompletedSuccessfully
                    ? (object)new CreateFinished(t.Result, replyTo)
                    : new CreateFailed(t.Exception!.GetBaseException(), replyTo))
                .PipeTo(Self);
            Become(() => Creating(spec));
        });
        ReceiveAny(_ => Sender.Tell(new Status.Failure(GardenException.UnknownHandle(Handle))));
    }

    private void Creating(ContainerSpec spec)
    {
        Receive<CreateFinished>(msg =>
        {
            _state = _state.Apply(new ContainerCreatedEvent(spec, msg.Rootfs));
            _log.Info("[{0}] create finished", Handle);
            msg.ReplyTo.Tell(new ContainerCreated(Handle));
            Become(Active);
            Stash.UnstashAll();
        });
        Receive<CreateFailed>(msg =>
        {
            _log.Warning("[{0}] create failed: {1}", Handle, msg.Error.Message);
            msg.ReplyTo.Tell(new Status.Failure(ToCreateError(msg.Error)));
            Context.Stop(Self);
        });
        Receive<GetSummary>(_ => Sender.Tell(Summary()));
        ReceiveAny(_ => Stash.Stash());
    }

    private void Active()
    {
        CommonQueries();
        Receive<RunProcess>(Run);
        Receive<AttachProcess>(Attach);
        Receive<SignalProcess>(Signal);
        Receive<SetProperty>(SetProperty);
        Receive<RemoveProperty>(RemoveProperty);
        Receive<StopContainer>(msg =>
        {
            var replyTo = Sender;
            _state = _state.Apply(new LifecycleChangedEvent(ContainerLifecycle.Stopping, null));
            _log.Info("[{0}] stop starting (kill={1})", Handle, msg.Kill);
            StopProcessesAsync(msg.Kill ? TimeSpan.Zero : _settings.StopGrace)
                .ContinueWith(_ => new StopFinished(replyTo)).PipeTo(Self);
            Become(Stopping);
        });
        Receive<DestroyContainer>(BeginDestroy);
    }

    private void Stopping()
    {
        CommonQueries();
        Receive<AttachProcess>(Attach);
        Receive<SignalProcess>(Signal);
        Receive<SetProperty>(SetProperty);
        Receive<RemoveProperty>(RemoveProperty);
        Receive<RunProcess>(_ => Sender.Tell(new Status.Failure(_state.CannotRun()!)));
        Receive<StopFinished>(msg =>
        {
            _state = _state.Apply(new LifecycleChangedEvent(ContainerLifecycle.Stopped, "stopped"));
            _log.Info("[{0}] stop finished", Handle);
            msg.ReplyTo.Tell(Done.Instance);
            Become(Stopped);
            Stash.UnstashAll();
        });
        ReceiveAny(_ => Stash.Stash());
    }

    private void Stopped()
    {
        CommonQueries();
        Receive<AttachProcess>(Attach);
        Receive<SignalProcess>(Signal);
        Receive<SetProperty>(SetProperty);
        Receive<RemoveProperty>(RemoveProperty);
        Receive<RunProcess>(_ => Sender.Tell(new Status.Failure(_state.CannotRun()!)));
        Receive<StopContainer>(_ => Sender.Tell(Done.Instance));
        Receive<DestroyContainer>(BeginDestroy);
    }

    private void Destroying()
    {
        Receive<DestroyContainer>(_ => _destroyWaiters.Add(Sender));
        Receive<GetSummary>(_ => Sender.Tell(Summary()));
        Receive<GetInfo>(_ => Sender.Tell(Info([])));
        Receive<DestroyFinished>(msg =>
        {
            if (msg.Error is null)
            {
                _state = _state.Apply(new LifecycleChangedEvent(ContainerLifecycle.Destroyed, null));
                _log.Info("[{0}] destroy finished", Handle);
                foreach (var w in _destroyWaiters) w.Tell(new ContainerDestroyed(Handle));
                Context.Stop(Self);
                return;
            }
            _log.Error(msg.Error, "[{0}] destroy failed", Handle);
            _state = _state.Apply(new LifecycleChangedEvent(ContainerLifecycle.Broken, $"destroy failed: {msg.Error.Message}"));
            var error = new GardenException(ErrorKind.Internal, $"destroy {Handle} failed: {msg.Error.Message}", msg.Error);
            foreach (var w in _destroyWaiters) w.Tell(new Status.Failure(error));
            _destroyWaiters.Clear();
            Become(Broken);
        });
        ReceiveAny(_ => Sender.Tell(new Status.Failure(
            new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} is being destroyed"))));
    }

    private void Broken()
    {
        CommonQueries();
        Receive<DestroyContainer>(BeginDestroy);
        ReceiveAny(_ => Sender.Tell(new Status.Failure(
            new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} is broken: {_state.Events.LastOrDefault()}; destroy it"))));
    }

    private void CommonQueries()
    {
        Receive<GetSummary>(_ => Sender.Tell(Summary()));
        Receive<GetInfo>(_ =>
        {
            var replyTo = Sender;
            _agent.ListAsync(CancellationToken.None).ContinueWith(t => new InfoReady(t.IsCompletedSuccessfully
                    ? t.Result.Where(p => !p.Exited).Select(p => p.Id).ToImmutableArray()
                    : [], replyTo))
                .PipeTo(Self);
        });
        Receive<InfoReady>(msg => msg.ReplyTo.Tell(Info(msg.ProcessIds)));
        Receive<GetProperties>(_ => Sender.Tell(new PropertiesResult(_state.Properties)));
        Receive<GetProperty>(msg =>
        {
            if (_state.Properties.TryGetValue(msg.Key, out var v)) Sender.Tell(new PropertyValue(v));
            else Sender.Tell(new Status.Failure(new GardenException(ErrorKind.NotFound,
                $"container {Handle} has no property \"{msg.Key}\"")));
        });
        Receive<AttachResolved>(msg =>
        {
            if (!msg.Known)
            {
                msg.ReplyTo.Tell(new Status.Failure(GardenException.UnknownProcess(Handle, msg.Request.ProcessId)));
                return;
            }
            var child = Context.Child(msg.Request.ProcessId);
            if (child.IsNobody()) child = Context.ActorOf(ProcessActor.Props(_agent, Handle, msg.Request.ProcessId), msg.Request.ProcessId);
            child.Tell(msg.Request, msg.ReplyTo);
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
        if (!Context.Child(spec.Id).IsNobody())
        {
            Sender.Tell(new Status.Failure(new GardenException(ErrorKind.AlreadyExists,
                $"process {spec.Id} already exists in container {Handle}")));
            return;
        }
        var env = (_state.Spec?.Env ?? []).AddRange(spec.Env);
        var child = Context.ActorOf(ProcessActor.Props(_agent, Handle, spec.Id), spec.Id);
        child.Tell(new StartProcess(spec with { Env = env }, msg.Detach, Sender));
    }

    private void Attach(AttachProcess msg)
    {
        var child = Context.Child(msg.ProcessId);
        if (!child.IsNobody())
        {
            child.Forward(msg);
            return;
        }
        if (Names.Problem(msg.ProcessId) is not null)
        {
            Sender.Tell(new Status.Failure(GardenException.UnknownProcess(Handle, msg.ProcessId)));
            return;
        }
        // A process this daemon did not start (another daemon's, before a restart): ask the agent.
        var replyTo = Sender;
        _agent.ListAsync(CancellationToken.None)
            .ContinueWith(t => new AttachResolved(msg, t.IsCompletedSuccessfully && t.Result.Any(p => p.Id == msg.ProcessId), replyTo))
            .PipeTo(Self);
    }

    private void Signal(SignalProcess msg)
    {
        var child = Context.Child(msg.ProcessId);
        if (child.IsNobody())
        {
            var replyTo = Sender;
            _agent.SignalAsync(msg.ProcessId, msg.Signal, CancellationToken.None)
                .ContinueWith(t => t.IsCompletedSuccessfully ? (object)Done.Instance
                    : new Status.Failure(AgentErrors.ToGarden(t.Exception!.GetBaseException(), Handle, msg.ProcessId)))
                .PipeTo(replyTo);
            return;
        }
        child.Forward(msg);
    }

    private void SetProperty(SetProperty msg)
    {
        if (msg.Key.Length == 0)
        {
            Sender.Tell(new Status.Failure(GardenException.Invalid("key", "must not be empty")));
            return;
        }
        _state = _state.Apply(new PropertySetEvent(msg.Key, msg.Value));
        Sender.Tell(Done.Instance);
    }

    private void RemoveProperty(RemoveProperty msg)
    {
        if (!_state.Properties.ContainsKey(msg.Key))
        {
            Sender.Tell(new Status.Failure(new GardenException(ErrorKind.NotFound, $"container {Handle} has no property \"{msg.Key}\"")));
            return;
        }
        _state = _state.Apply(new PropertyRemovedEvent(msg.Key));
        Sender.Tell(Done.Instance);
    }

    private void BeginDestroy(DestroyContainer msg)
    {
        _destroyWaiters.Add(Sender);
        _state = _state.Apply(new LifecycleChangedEvent(ContainerLifecycle.Destroying, null));
        _log.Info("[{0}] destroy starting", Handle);
        DestroyAsync().ContinueWith(t => new DestroyFinished(t.IsCompletedSuccessfully ? null : t.Exception!.GetBaseException()))
            .PipeTo(Self);
        Become(Destroying);
    }

    private ContainerSummary Summary() => new(Handle, _state.Lifecycle, _state.Properties);

    private ContainerInfo Info(ImmutableArray<string> processIds) => new(Handle, _state.Lifecycle, _state.Events,
        OverlayRootfs.MountPoint(_paths.Depot), processIds, _state.Properties, _state.Spec?.Rootfs ?? "", _state.Spec?.Privileged ?? false);

    private static GardenException ToCreateError(Exception e) => e switch
    {
        GardenException g => g,
        RootfsException r => GardenException.Invalid("rootfs", r.Message),
        _ => new GardenException(ErrorKind.Internal, $"create failed: {e.Message}", e),
    };

    // ---- Linux work (off the actor thread; touches no actor state) ----

    /// <summary>Depot, rootfs, runc, agent: each finished step is undone in reverse order if a later one fails.</summary>
    private async Task<string> CreateAsync(ContainerSpec spec)
    {
        var undo = new Stack<(string Step, Func<Task> Action)>();
        try
        {
            Directory.CreateDirectory(_paths.Depot);
            Directory.CreateDirectory(Path.GetDirectoryName(_paths.AgentSocket)!);
            undo.Push(("depot", () => { DeleteDepot(); return Task.CompletedTask; }));

            var rootfs = await _fx.Rootfs.CreateAsync(Handle, spec.Rootfs, _paths.Depot, CancellationToken.None);
            undo.Push(("rootfs", () => _fx.Rootfs.DestroyAsync(Handle, _paths.Depot, CancellationToken.None)));

            var bundle = new BundleSpec(Handle, rootfs, _settings.AgentBinary, _paths.AgentSocket, _paths.AgentLog,
                _fx.Cgroups.PathFor(Handle), spec.Privileged, spec.Env);
            undo.Push(("runtime", RemoveFromRuntimeAsync));
            await _fx.Runtime.RunAsync(bundle, _paths.Bundle, CancellationToken.None);

            using var cts = new CancellationTokenSource(_settings.AgentStartTimeout);
            try
            {
                await _agent.PingAsync(cts.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or AgentUnavailableException)
            {
                throw new GardenException(ErrorKind.Internal,
                    $"the container's agent did not answer within {_settings.AgentStartTimeout.TotalSeconds:0.#}s: {e.Message} (see {_paths.AgentLog})", e);
            }
            return rootfs;
        }
        catch
        {
            while (undo.TryPop(out var step))
            {
                try { await step.Action(); }
                catch (Exception e) { _log.Error(e, "[{0}] create: undo {1} failed", Handle, step.Step); }
            }
            throw;
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
            // No agent: nothing in the container can be running processes for us; runc kill ends the rest.
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

    private async Task DestroyAsync()
    {
        await StopProcessesAsync(_settings.DestroyGrace);
        await RemoveFromRuntimeAsync();
        await _fx.Rootfs.DestroyAsync(Handle, _paths.Depot, CancellationToken.None);
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
        if (_fx.Rootfs.IsMounted(_paths.Depot))
            throw new GardenException(ErrorKind.Internal, $"container {Handle}: rootfs still mounted, depot kept");
        File.Delete(_paths.AgentSocket);
        OverlayRootfs.DeleteTree(_paths.Depot);
    }
}
