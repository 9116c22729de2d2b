using Garden.Protocol.Agent;

namespace Garden.Actors.Process;

/// <summary>A client's view of one process: its output and then its exit, with stdin towards it.</summary>
public interface IProcessStream : IAsyncDisposable
{
    string ProcessId { get; }

    /// <summary>OutputChunk, OutputMissed, and last Exited; null if the container went away before the process's exit was known.</summary>
    ValueTask<AgentEvent?> ReadAsync(CancellationToken ct);

    ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct);

    ValueTask CloseStdinAsync(CancellationToken ct);
}

/// <summary>The messages of the <see cref="ProcessActor"/> and of the streams it hands to clients. Nested, so none shares a
/// name with a garden.v1 protobuf type (<c>ProcessProtocol.ProcessStarted</c> vs <c>Garden.Protocol.Api.ProcessStarted</c>).</summary>
public static class ProcessProtocol
{
    /// <summary>Sent by the ContainerActor to a new ProcessActor: spawn in the agent, reply ProcessStarted to ReplyTo.</summary>
    internal sealed record StartProcess(ProcessSpec Spec, bool Detach, Akka.Actor.IActorRef ReplyTo);

    /// <summary>Reply to Run: the process id and, unless detached, its stream from offset 0.</summary>
    public sealed record ProcessStarted(string ProcessId, IProcessStream? Stream);

    /// <summary>Reply to Attach.</summary>
    public sealed record ProcessAttached(IProcessStream Stream);

    /// <summary>Sent by a stream when it saw the process's exit.</summary>
    internal sealed record ExitObserved(int ExitCode, int Signal);

    /// <summary>Sent by the container when its exit watcher found the process exited in the agent's list.</summary>
    internal sealed record ProcessExitSeen(int ExitCode, int Signal);

    /// <summary>Sent by the container when the agent no longer knows the process (it forgot it before anyone here saw the exit).</summary>
    internal sealed record ProcessGone
    {
        public static readonly ProcessGone Instance = new();
    }

    /// <summary>Sent by a ProcessActor to its container once the agent runs the process: the container watches for its exit.</summary>
    internal sealed record ProcessSpawned(string ProcessId);

    /// <summary>
    /// Sent by a ProcessActor to its container when it has nothing left to do: the process exited (or never started, or
    /// the agent forgot it), its exit was published, no client is attached and no start or attach is in flight.
    /// <paramref name="Handled"/> counts the messages it has taken from the container: the container stops it only if it has
    /// sent no more than that (otherwise one is on its way, and the actor reports again once it is done with it).
    /// </summary>
    internal sealed record ProcessIdle(string ProcessId, Akka.Actor.IActorRef Actor, int Handled, bool ExitKnown);

    /// <summary>What a ProcessActor of a pea (a process with its own root, <see cref="Kernel.PeaKernel"/>) needs: the
    /// container's peas and its spec (to make the pea), or <paramref name="Adopted"/>: the pea runs already (an earlier
    /// gardend started it).</summary>
    public sealed record PeaLink(Kernel.PeaKernel Peas, ContainerSpec? Container, bool Adopted);

    /// <summary>A pea's own exit watch (its agent is not the container's, whose exit watcher does not see it).</summary>
    internal sealed record PeaExitPoll(int? ExitCode, bool Gone);

    /// <summary>Sent by a pea's ProcessActor to its container once the pea is released.</summary>
    internal sealed record PeaGone(string ProcessId);

    /// <summary>The pea's release finished (or failed: it is logged, and a restart or the container's destroy retries).</summary>
    internal sealed record PeaReleased
    {
        public static readonly PeaReleased Instance = new();
    }

    /// <summary>A start or an attach of the ProcessActor finished (its reply went to the client); <paramref name="Attached"/>:
    /// a start whose client got a stream of the process.</summary>
    internal sealed record ProcessOpDone(bool Spawned, bool StartFailed, bool Attached = false);

    /// <summary>An attached process's stream has had <see cref="ProcessActor.StreamSeesExitFor"/> to see its exit: from now
    /// on the container watches for it too.</summary>
    internal sealed record ExitWatchDue
    {
        public static readonly ExitWatchDue Instance = new();
    }

    /// <summary>Sent by a stream when a client holds it (the reply to a Run or an Attach).</summary>
    internal sealed record StreamOpened
    {
        public static readonly StreamOpened Instance = new();
    }

    /// <summary>Sent by a ProcessActor to its container when a client attaches to (+1) or leaves (-1) one of its streams:
    /// the container's grace timer pauses while any client is attached.</summary>
    internal sealed record ClientsChanged(int Delta);

    /// <summary>Sent by a stream when its client went away.</summary>
    internal sealed record StreamClosed
    {
        public static readonly StreamClosed Instance = new();
    }
}
