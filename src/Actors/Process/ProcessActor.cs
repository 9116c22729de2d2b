using Akka.Actor;
using Akka.Event;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;

namespace Garden.Actors.Process;

/// <summary>One process in a container. The agent owns the OS process (it is its parent and keeps its output);
/// this actor owns the daemon's view of it: spawning, every attached stream, signals, and its exit status.</summary>
public sealed class ProcessActor : ReceiveActor
{
    private readonly IAgentClient _agent;
    private readonly string _handle;
    private readonly string _id;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private int _attached;

    public ProcessActor(IAgentClient agent, string handle, string id)
    {
        _agent = agent;
        _handle = handle;
        _id = id;

        Receive<StartProcess>(Start);
        Receive<AttachProcess>(Attach);
        Receive<SignalProcess>(Signal);
        Receive<ExitObserved>(e =>
        {
            if (ExitCode is null)
            {
                _log.Info("[{0}] process {1} exited with {2}", _handle, _id, e.ExitCode);
                Context.System.EventStream.Publish(new ContainerEvent(_handle, ContainerEvent.ProcessExited, DateTimeOffset.UtcNow, _id, e.ExitCode));
            }
            ExitCode = e.ExitCode;
        });
        // Counted from the streams themselves (opened when a client got one, closed when it went), so a Run or an Attach
        // that failed never counts; the container pauses its grace timer while any client is attached.
        Receive<StreamOpened>(_ =>
        {
            _attached++;
            Context.Parent.Tell(new ClientsChanged(+1));
        });
        Receive<StreamClosed>(_ =>
        {
            if (_attached == 0) return;
            _attached--;
            Context.Parent.Tell(new ClientsChanged(-1));
        });
    }

    protected override void PostStop()
    {
        // A process actor that goes (its container is destroyed) releases the clients it counted.
        if (_attached > 0) Context.Parent.Tell(new ClientsChanged(-_attached));
        base.PostStop();
    }

    /// <summary>Known once a stream saw the exit; null while running or unknown.</summary>
    private int? ExitCode { get; set; }

    public static Props Props(IAgentClient agent, string handle, string id) =>
        Akka.Actor.Props.Create(() => new ProcessActor(agent, handle, id));

    private void Start(StartProcess msg)
    {
        var request = ToSpawnRequest(msg.Spec, msg.Detach);
        var self = Self;
        _log.Info("[{0}] process {1} starting: {2}", _handle, _id, msg.Spec.Path);
        Task<object> work = msg.Detach
            ? _agent.SpawnAsync(request, CancellationToken.None)
                .ContinueWith(t => t.IsCompletedSuccessfully ? new ProcessStarted(_id, null) : Fail(t.Exception!))
            : _agent.SpawnAttachedAsync(request, CancellationToken.None)
                .ContinueWith(t => t.IsCompletedSuccessfully ? new ProcessStarted(_id, Observe(t.Result, self)) : Fail(t.Exception!));
        work.PipeTo(msg.ReplyTo);
    }

    private void Attach(AttachProcess msg)
    {
        var self = Self;
        _agent.AttachAsync(_id, msg.FromOffset, CancellationToken.None)
            .ContinueWith(t => t.IsCompletedSuccessfully ? new ProcessAttached(Observe(t.Result, self)) : Fail(t.Exception!))
            .PipeTo(Sender);
    }

    private void Signal(SignalProcess msg)
    {
        _agent.SignalAsync(_id, msg.Signal, CancellationToken.None)
            .ContinueWith(t => t.IsCompletedSuccessfully ? Done.Instance : Fail(t.Exception!))
            .PipeTo(Sender);
    }

    private IProcessStream Observe(IAgentStream stream, IActorRef self) => new ObservedStream(stream, self);

    private object Fail(AggregateException e) => new Status.Failure(AgentErrors.ToGarden(e.GetBaseException(), _handle, _id));

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

/// <summary>Agent failures in the caller's terms.</summary>
public static class AgentErrors
{
    public static GardenException ToGarden(Exception e, string handle, string? processId = null) => e switch
    {
        GardenException g => g,
        AgentException a => a.Code switch
        {
            ErrorCode.NotFound => GardenException.UnknownProcess(handle, processId ?? "?"),
            ErrorCode.AlreadyExists => new GardenException(ErrorKind.AlreadyExists, $"process {processId} already exists in container {handle}"),
            ErrorCode.NotExecutable => new GardenException(ErrorKind.InvalidArgument, $"path: {a.Message}"),
            ErrorCode.NoSuchUser => new GardenException(ErrorKind.InvalidArgument, $"user: {a.Message}"),
            ErrorCode.BadDirectory => new GardenException(ErrorKind.InvalidArgument, $"dir: {a.Message}"),
            ErrorCode.Invalid => new GardenException(ErrorKind.InvalidArgument, a.Message),
            ErrorCode.PidsLimit => new GardenException(ErrorKind.ResourceExhausted,
                $"container {handle} is at its pids limit: no process can start until one exits or the limit is raised"),
            _ => new GardenException(ErrorKind.Internal, $"container {handle}: agent: {a.Message}"),
        },
        AgentUnavailableException u => new GardenException(ErrorKind.FailedPrecondition,
            $"container {handle} is not serving processes (its agent is unreachable: {u.Message})"),
        _ => new GardenException(ErrorKind.Internal, $"container {handle}: {e.Message}", e),
    };
}
