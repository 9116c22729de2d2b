using System.Collections.Immutable;
using System.Text;
using Garden.Actors.Container;
using Garden.Protocol.Agent;

namespace Garden.Actors.Process;

/// <summary>
/// StreamIn/StreamOut. The agent binary, bind-mounted at /.garden/agent in every container, has two file tools
/// (`stream-in DEST`, `stream-out PATH`); they run as ordinary processes of the container through Run, as the requested
/// user, so a tar is extracted or made inside the container's root and mount namespace with that user's rights: a symlink or
/// `..` can only ever resolve inside the container, and no daemon code touches the container's files. The archive streams
/// as the process's stdin/stdout (with the agent's backpressure), never whole in memory.
/// </summary>
public static class FileTransfers
{
    public const string AgentPath = "/.garden/agent";

    /// <summary>Runs `stream-in PATH` as user; its stdin is the archive. A relative path is relative to the user's home (the
    /// tool starts where any process of that user does: Garden's "default run directory"), or / when it has none.</summary>
    public static ContainerProtocol.RunProcess StreamIn(string handle, string path, string user) => Tool(handle, "stream-in", path, user);

    /// <summary>Runs `stream-out PATH` as user; its stdout is the archive.</summary>
    public static ContainerProtocol.RunProcess StreamOut(string handle, string path, string user) => Tool(handle, "stream-out", path, user);

    private static ContainerProtocol.RunProcess Tool(string handle, string tool, string path, string user)
    {
        if (path.Length == 0) throw GardenException.Invalid("path", "must not be empty");
        if (path.Contains('\0')) throw GardenException.Invalid("path", "contains a NUL byte");
        var spec = new ProcessSpec($"{tool}-{Names.Generate()}", AgentPath, [tool, path], [], "", user,
            ImmutableArray<RlimitSpec>.Empty, null);
        return new ContainerProtocol.RunProcess(handle, spec, Detach: false);
    }
}

/// <summary>One running file tool seen as an archive: bytes in (StreamIn) or out (StreamOut), and at the end its exit
/// turned into a <see cref="GardenException"/> that names what failed, with the tool's own reason.</summary>
public sealed class FileTransfer(IProcessStream process, string handle, string operation, string path) : IAsyncDisposable
{
    private const int MaxReason = 4096;
    private readonly StringBuilder _stderr = new();

    public string ProcessId => process.ProcessId;

    /// <summary>False until the tool's exit was seen: a transfer the client abandoned still has a tool to kill.</summary>
    public bool Finished { get; private set; }

    /// <summary>Pieces of at most this size reach the agent: the size of the buffers the agent reuses for a process's
    /// stdin (it copies each piece once, into one of a few buffers of its own, so big pieces make no garbage in a
    /// process that counts against the container's memory limit).</summary>
    private const int AgentFrameBytes = 256 * 1024;

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        for (int off = 0; off < data.Length; off += AgentFrameBytes)
            await process.WriteStdinAsync(data.Slice(off, Math.Min(AgentFrameBytes, data.Length - off)), ct).ConfigureAwait(false);
    }

    public ValueTask CompleteInputAsync(CancellationToken ct) => process.CloseStdinAsync(ct);

    /// <summary>The next piece of the tool's stdout; null once it exited successfully. Throws if it failed.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadAsync(CancellationToken ct)
    {
        while (true)
        {
            var evt = await process.ReadAsync(ct).ConfigureAwait(false);
            if (evt is null)
                throw new GardenException(ErrorKind.Unavailable,
                    $"{operation} {path} in container {handle}: the container's agent closed the stream before it finished");
            switch (evt.KindCase)
            {
                case AgentEvent.KindOneofCase.Output when evt.Output.Stream == StreamKind.Stdout:
                    return evt.Output.Data.Memory;
                case AgentEvent.KindOneofCase.Output:
                    if (_stderr.Length < MaxReason) _stderr.Append(evt.Output.Data.ToStringUtf8());
                    break;
                case AgentEvent.KindOneofCase.Missed:
                    throw new GardenException(ErrorKind.Internal,
                        $"{operation} {path} in container {handle}: bytes {evt.Missed.From}-{evt.Missed.To} of the archive were lost");
                case AgentEvent.KindOneofCase.Exited:
                    Finished = true;
                    if (evt.Exited.ExitCode == 0 && evt.Exited.Signal == 0) return null;
                    throw Failure(evt.Exited.ExitCode, evt.Exited.Signal);
                case AgentEvent.KindOneofCase.Error:
                    throw new GardenException(ErrorKind.Internal, $"{operation} {path} in container {handle}: agent: {evt.Error.Message}");
            }
        }
    }

    /// <summary>The tool's exit code (<see cref="ToolExit"/>) in the caller's terms.</summary>
    internal GardenException Failure(int exitCode, int signal)
    {
        string reason = _stderr.ToString().Trim();
        if (reason.Length == 0) reason = signal != 0 ? $"killed by signal {signal}" : $"exit code {exitCode}";
        string message = $"{operation} {path} in container {handle}: {reason}";
        if (signal != 0)
            return new GardenException(ErrorKind.Internal, message + (signal == 9 ? " (out of memory, or the container is stopping)" : ""));
        return (ToolExit)exitCode switch
        {
            ToolExit.ToolBadInput => new GardenException(ErrorKind.InvalidArgument, message),
            ToolExit.ToolDenied => new GardenException(ErrorKind.InvalidArgument, message),
            ToolExit.ToolNotFound => new GardenException(ErrorKind.NotFound, message),
            ToolExit.ToolNoSpace => new GardenException(ErrorKind.ResourceExhausted, message),
            _ => new GardenException(ErrorKind.Internal, message),
        };
    }

    public ValueTask DisposeAsync() => process.DisposeAsync();
}
