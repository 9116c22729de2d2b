using Garden.Protocol.Agent;

namespace Garden.Linux.Agent;

/// <summary>Talks to one container's garden-agent over its Unix socket (one connection per operation).</summary>
public interface IAgentClient
{
    /// <summary>The host path of the agent's socket.</summary>
    string SocketPath { get; }

    /// <summary>Answers when the agent serves; throws <see cref="AgentUnavailableException"/> otherwise.</summary>
    Task<Pong> PingAsync(CancellationToken ct);

    /// <summary>Starts a process and returns at once; stdin is closed.</summary>
    Task<Spawned> SpawnAsync(SpawnRequest spec, CancellationToken ct);

    /// <summary>Starts a process and keeps the connection as its output stream from offset 0 (stdin open if spec.KeepStdin).</summary>
    Task<IAgentStream> SpawnAttachedAsync(SpawnRequest spec, CancellationToken ct);

    /// <summary>Streams a process's output from an absolute offset, then its exit.</summary>
    Task<IAgentStream> AttachAsync(string processId, ulong fromOffset, CancellationToken ct);

    Task SignalAsync(string processId, int signal, CancellationToken ct);

    /// <summary>Resizes the terminal of a process started with one.</summary>
    Task SetTtyAsync(string processId, uint rows, uint cols, CancellationToken ct);

    /// <summary>Signals every process in the container except the agent (ours and whatever they started).</summary>
    Task SignalAllAsync(int signal, CancellationToken ct);

    Task<IReadOnlyList<ProcessEntry>> ListAsync(CancellationToken ct);

    /// <summary>What <see cref="ListAsync"/> answers, once a process has exited whose exit was not reported yet (at once if
    /// one is there), or after <paramref name="wait"/> (over a connection held that long). An agent that predates this
    /// operation throws <see cref="AgentException"/> (INVALID); one that goes throws <see cref="AgentUnavailableException"/>.</summary>
    Task<IReadOnlyList<ProcessEntry>> WaitExitsAsync(TimeSpan wait, CancellationToken ct);

    /// <summary>Appends the agent's log lines to <paramref name="logFile"/> (created 0600) as the agent logs them, over a
    /// connection of its own that is opened again whenever it breaks, until disposed. <paramref name="problem"/> hears
    /// why it stopped or waits (for the daemon's log). An agent that predates FollowLog keeps writing its own log.</summary>
    IAsyncDisposable FollowLog(string logFile, Action<string>? problem = null);
}

/// <summary>One attached process stream: events are OutputChunk, OutputMissed, and finally Exited.</summary>
public interface IAgentStream : IAsyncDisposable
{
    string ProcessId { get; }

    /// <summary>Pid inside the container (the agent confirms spawn and attach streams with it).</summary>
    int Pid { get; }

    /// <summary>Reads the next event; null when the agent closed the connection without an Exited event.</summary>
    ValueTask<AgentEvent?> ReadAsync(CancellationToken ct);

    ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct);

    ValueTask CloseStdinAsync(CancellationToken ct);

    ValueTask ResizeAsync(uint rows, uint cols, CancellationToken ct);
}

/// <summary>Makes clients for agent sockets; the composition root provides the real one.</summary>
public interface IAgentConnector
{
    IAgentClient Connect(string socketPath);
}

/// <summary>The agent answered with an error (code as in agent.proto).</summary>
public sealed class AgentException(ErrorCode code, string message) : Exception(message)
{
    public ErrorCode Code { get; } = code;
}

/// <summary>The agent's socket cannot be reached (not started yet, or the container's init is gone), or the agent did
/// not answer within the call's deadline (<see cref="TimedOut"/>).</summary>
public sealed class AgentUnavailableException(string socketPath, string reason, Exception? inner = null, bool timedOut = false)
    : Exception($"agent at {socketPath} unavailable: {reason}", inner)
{
    public string SocketPath { get; } = socketPath;

    public string Reason { get; } = reason;

    public bool TimedOut { get; } = timedOut;
}
