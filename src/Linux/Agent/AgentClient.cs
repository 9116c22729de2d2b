using System.Net.Sockets;
using Garden.Protocol.Agent;
using Google.Protobuf;

namespace Garden.Linux.Agent;

/// <summary>Makes <see cref="AgentClient"/>s.</summary>
public sealed class AgentConnector : IAgentConnector
{
    public IAgentClient Connect(string socketPath) => new AgentClient(socketPath);
}

/// <summary>
/// Talks to one container's garden-agent: one Unix-socket connection per operation, 4-byte big-endian length-prefixed
/// protobuf frames (agent.proto). Connection failures become <see cref="AgentUnavailableException"/>, agent errors
/// <see cref="AgentException"/>.
/// </summary>
public sealed class AgentClient(string socketPath) : IAgentClient
{
    public string SocketPath { get; } = socketPath;

    public async Task<Pong> PingAsync(CancellationToken ct)
    {
        var ev = await RequestAsync(new AgentRequest { Ping = new PingRequest() }, ct);
        return Expect(ev, AgentEvent.KindOneofCase.Pong).Pong;
    }

    public async Task<Spawned> SpawnAsync(SpawnRequest spec, CancellationToken ct)
    {
        var s = spec.Clone();
        s.Attach = false;
        var ev = await RequestAsync(new AgentRequest { Spawn = s }, ct);
        return Expect(ev, AgentEvent.KindOneofCase.Spawned).Spawned;
    }

    public async Task<IAgentStream> SpawnAttachedAsync(SpawnRequest spec, CancellationToken ct)
    {
        var s = spec.Clone();
        s.Attach = true;
        var frames = await ConnectAsync(ct);
        try
        {
            await frames.WriteAsync(new AgentRequest { Spawn = s }, ct);
            var ev = Expect(await ReadFirstAsync(frames, ct), AgentEvent.KindOneofCase.Spawned);
            return new AgentStream(frames, ev.Spawned.Id, ev.Spawned.Pid);
        }
        catch
        {
            frames.Dispose();
            throw;
        }
    }

    public async Task<IAgentStream> AttachAsync(string processId, ulong fromOffset, CancellationToken ct)
    {
        var frames = await ConnectAsync(ct);
        try
        {
            await frames.WriteAsync(new AgentRequest { Attach = new AttachRequest { Id = processId, FromOffset = fromOffset } }, ct);
            // the agent confirms with Spawned{id,pid} (or answers NOT_FOUND) before it streams
            var ev = Expect(await ReadFirstAsync(frames, ct), AgentEvent.KindOneofCase.Spawned);
            return new AgentStream(frames, processId, ev.Spawned.Pid);
        }
        catch
        {
            frames.Dispose();
            throw;
        }
    }

    public async Task SignalAsync(string processId, int signal, CancellationToken ct)
    {
        var ev = await RequestAsync(new AgentRequest { Signal = new SignalRequest { Id = processId, Signal = signal } }, ct);
        Expect(ev, AgentEvent.KindOneofCase.Ack);
    }

    public async Task SetTtyAsync(string processId, uint rows, uint cols, CancellationToken ct)
    {
        var ev = await RequestAsync(new AgentRequest { Resize = new ResizeRequest { Id = processId, Rows = rows, Cols = cols } }, ct);
        Expect(ev, AgentEvent.KindOneofCase.Ack);
    }

    public async Task SignalAllAsync(int signal, CancellationToken ct)
    {
        var ev = await RequestAsync(new AgentRequest { Signal = new SignalRequest { All = true, Signal = signal } }, ct);
        Expect(ev, AgentEvent.KindOneofCase.Ack);
    }

    public async Task<IReadOnlyList<ProcessEntry>> ListAsync(CancellationToken ct)
    {
        var ev = await RequestAsync(new AgentRequest { List = new ListRequest() }, ct);
        return Expect(ev, AgentEvent.KindOneofCase.List).List.Processes;
    }

    private async Task<AgentEvent> RequestAsync(AgentRequest request, CancellationToken ct)
    {
        using var frames = await ConnectAsync(ct);
        await frames.WriteAsync(request, ct);
        return await ReadFirstAsync(frames, ct);
    }

    private async Task<AgentEvent> ReadFirstAsync(FrameSocket frames, CancellationToken ct)
    {
        ReadOnlyMemory<byte>? frame;
        try
        {
            frame = await frames.ReadFrameAsync(ct);
        }
        catch (SocketException e)
        {
            throw new AgentUnavailableException(SocketPath, e.Message, e);
        }
        if (frame == null) throw new AgentUnavailableException(SocketPath, "the agent closed the connection without answering");
        return AgentEvent.Parser.ParseFrom(frame.Value.Span);
    }

    private static AgentEvent Expect(AgentEvent ev, AgentEvent.KindOneofCase kind)
    {
        if (ev.KindCase == kind) return ev;
        if (ev.KindCase == AgentEvent.KindOneofCase.Error) throw new AgentException(ev.Error.Code, ev.Error.Message);
        throw new AgentException(ErrorCode.Internal, $"agent answered {ev.KindCase}, expected {kind}");
    }

    private async Task<FrameSocket> ConnectAsync(CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct);
            return new FrameSocket(socket);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new AgentUnavailableException(SocketPath, e.SocketErrorCode == SocketError.AddressNotAvailable ? "socket missing" : e.Message, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>One attached process stream over its own connection.</summary>
    private sealed class AgentStream(FrameSocket frames, string processId, int pid) : IAgentStream
    {
        private bool _ended;

        public string ProcessId { get; } = processId;

        public int Pid { get; } = pid;

        public async ValueTask<AgentEvent?> ReadAsync(CancellationToken ct)
        {
            if (_ended) return null;
            ReadOnlyMemory<byte>? frame;
            try
            {
                frame = await frames.ReadFrameAsync(ct);
            }
            catch (SocketException)
            {
                _ended = true;
                return null;
            }
            catch (InvalidDataException)
            {
                _ended = true;
                return null;
            }
            if (frame == null)
            {
                _ended = true;
                return null;
            }
            return Check(AgentEvent.Parser.ParseFrom(frame.Value.Span));
        }

        private AgentEvent Check(AgentEvent ev)
        {
            if (ev.KindCase == AgentEvent.KindOneofCase.Exited) _ended = true;
            if (ev.KindCase == AgentEvent.KindOneofCase.Error)
            {
                _ended = true;
                throw new AgentException(ev.Error.Code, ev.Error.Message);
            }
            return ev;
        }

        public ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct) =>
            frames.WriteAsync(new AgentRequest { Input = new StdinInput { Data = ByteString.CopyFrom(data.Span) } }, ct);

        public ValueTask CloseStdinAsync(CancellationToken ct) =>
            frames.WriteAsync(new AgentRequest { Input = new StdinInput { Close = true } }, ct);

        public ValueTask ResizeAsync(uint rows, uint cols, CancellationToken ct) =>
            frames.WriteAsync(new AgentRequest { Resize = new ResizeRequest { Rows = rows, Cols = cols } }, ct);

        public ValueTask DisposeAsync()
        {
            frames.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
