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

/// <summary>Sent by the ContainerActor to a new ProcessActor: spawn in the agent, reply ProcessStarted to ReplyTo.</summary>
internal sealed record StartProcess(ProcessSpec Spec, bool Detach, Akka.Actor.IActorRef ReplyTo);

/// <summary>Reply to Run: the process id and, unless detached, its stream from offset 0.</summary>
public sealed record ProcessStarted(string ProcessId, IProcessStream? Stream);

/// <summary>Reply to Attach.</summary>
public sealed record ProcessAttached(IProcessStream Stream);

/// <summary>Sent by a stream when it saw the process's exit.</summary>
internal sealed record ExitObserved(int ExitCode, int Signal);

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
