using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Garden.Actors.Container;
using Garden.Linux.Host;

namespace Garden.Actors.Host;

/// <summary>The root of the tree: the registry of handles, capacity, and the router of every container request.
/// Supervision: a ContainerActor that throws is stopped (its state would be unknown), never silently restarted;
/// its handle is then reported as broken until destroyed (issue: journal recovery restores it).</summary>
public sealed class HostActor : ReceiveActor
{
    private readonly GardenSettings _settings;
    private readonly ContainerEffects _effects;
    private readonly IHostResources _resources;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly Dictionary<string, IActorRef> _containers = new();
    private readonly Dictionary<IActorRef, string> _handles = new();

    public HostActor(GardenSettings settings, ContainerEffects effects, IHostResources resources)
    {
        _settings = settings;
        _effects = effects;
        _resources = resources;

        Receive<Ping>(_ => Sender.Tell(new Pong(Version)));
        Receive<GetCapacity>(_ => Sender.Tell(new Capacity(_resources.MemoryBytes(), _resources.DiskBytes(_settings.StateDir),
            (ulong)_settings.MaxContainers)));
        Receive<CreateContainer>(Create);
        Receive<ListContainers>(List);
        Receive<BulkInfo>(BulkInfo);
        Receive<IContainerCommand>(Route);
        Receive<Terminated>(t =>
        {
            if (_handles.Remove(t.ActorRef, out var handle)) _containers.Remove(handle);
        });
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

    private void Create(CreateContainer msg)
    {
        var spec = msg.Spec;
        try
        {
            if (spec.Handle.Length == 0) spec = spec with { Handle = Names.Generate() };
            Names.Validate("handle", spec.Handle);
            if (spec.Rootfs.Length == 0) spec = spec with { Rootfs = _settings.DefaultRootfs };
            foreach (var e in spec.Env)
                if (!e.Contains('=') || e.StartsWith('=')) throw GardenException.Invalid("env", $"\"{e}\" is not KEY=VALUE");
            if (_containers.ContainsKey(spec.Handle))
                throw new GardenException(ErrorKind.AlreadyExists, $"handle already exists: {spec.Handle}");
            if (_containers.Count >= _settings.MaxContainers)
                throw new GardenException(ErrorKind.ResourceExhausted,
                    $"max containers reached ({_settings.MaxContainers}); destroy one or raise garden.max-containers");
        }
        catch (GardenException e)
        {
            Sender.Tell(new Status.Failure(e));
            return;
        }
        var child = Context.ActorOf(ContainerActor.Props(spec.Handle, _settings, _effects), spec.Handle);
        Context.Watch(child);
        _containers[spec.Handle] = child;
        _handles[child] = spec.Handle;
        child.Forward(new CreateContainer(spec));
    }

    private void Route(IContainerCommand msg)
    {
        if (_containers.TryGetValue(msg.Handle, out var child)) child.Forward(msg);
        else Sender.Tell(new Status.Failure(GardenException.UnknownHandle(msg.Handle)));
    }

    private void List(ListContainers msg)
    {
        var timeout = _settings.AskTimeout;
        var asks = _containers.Values.Select(c => c.Ask<ContainerSummary>(new GetSummary(""), timeout)
            .ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : null)).ToList();
        Task.WhenAll(asks).ContinueWith(t => (object)new ContainerList(t.Result
                .Where(s => s is not null && s.State is not (ContainerLifecycle.Creating or ContainerLifecycle.Destroying or ContainerLifecycle.Destroyed))
                .Where(s => msg.Filter.All(kv => s!.Properties.TryGetValue(kv.Key, out var v) && v == kv.Value))
                .Select(s => s!.Handle).Order(StringComparer.Ordinal).ToImmutableArray()))
            .PipeTo(Sender);
    }

    private void BulkInfo(BulkInfo msg)
    {
        var timeout = _settings.AskTimeout;
        var asks = msg.Handles.Distinct().Select(async h =>
        {
            if (!_containers.TryGetValue(h, out var c)) return (h, (ContainerInfo?)null, GardenException.UnknownHandle(h));
            try
            {
                return (h, await c.Ask<ContainerInfo>(new GetInfo(h), timeout), (GardenException?)null);
            }
            catch (Exception e)
            {
                return (h, null, e as GardenException ?? new GardenException(ErrorKind.Internal, e.Message, e));
            }
        }).ToList();
        Task.WhenAll(asks).ContinueWith(t => (object)new BulkInfoResult(
                t.Result.Where(r => r.Item2 is not null).ToImmutableDictionary(r => r.h, r => r.Item2!),
                t.Result.Where(r => r.Item3 is not null).ToImmutableDictionary(r => r.h, r => r.Item3!)))
            .PipeTo(Sender);
    }
}
