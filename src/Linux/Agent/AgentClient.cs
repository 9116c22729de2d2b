using System.Net.Sockets;
using Garden.Protocol.Agent;
using Google.Protobuf;

namespace Garden.Linux.Agent;

/// <summary>Makes <see cref="AgentClient"/>s whose calls have <paramref name="callTimeout"/> as their deadline.</summary>
public sealed class AgentConnector(TimeSpan callTimeout) : IAgentConnector
{
    public static readonly TimeSpan DefaultCallTimeout = TimeSpan.FromSeconds(5);

    public AgentConnector() : this(DefaultCallTimeout)
    {
    }

    public IAgentClient Connect(string socketPath) => new AgentClient(socketPath, callTimeout);
}

/// <summary>
/// Talks to one container's garden-agent: one Unix-socket connection per operation, 4-byte big-endian length-prefixed
/// protobuf frames (agent.proto). Connection failures become <see cref="AgentUnavailableException"/>, agent errors
/// <see cref="AgentException"/>. Every call has a deadline (connect, request and the first answer; for a stream, its
/// handshake): an agent that does not answer in time (frozen, or starved) is unavailable, and the call's socket is closed,
/// so a frozen agent never holds a caller or a descriptor of the daemon.
/// </summary>
public sealed class AgentClient(string socketPath, TimeSpan callTimeout) : IAgentClient
{
    public AgentClient(string socketPath) : this(socketPath, AgentConnector.DefaultCallTimeout)
    {
    }

    public string SocketPath { get; } = socketPath;

    public TimeSpan CallTimeout { get; } = callTimeout > TimeSpan.Zero ? callTimeout : AgentConnector.DefaultCallTimeout;

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
        var (frames, ev) = await HandshakeAsync(new AgentRequest { Spawn = s }, ct);
        return new AgentStream(frames, ev.Spawned.Id, ev.Spawned.Pid);
    }

    public async Task<IAgentStream> AttachAsync(string processId, ulong fromOffset, CancellationToken ct)
    {
        // the agent confirms with Spawned{id,pid} (or answers NOT_FOUND) before it streams
        var (frames, ev) = await HandshakeAsync(new AgentRequest { Attach = new AttachRequest { Id = processId, FromOffset = fromOffset } }, ct);
        return new AgentStream(frames, processId, ev.Spawned.Pid);
    }

    /// <summary>Connects, sends the request and reads Spawned, all within the deadline; the connection then carries the
    /// stream (no deadline: a process may be quiet for hours).</summary>
    private async Task<(FrameSocket Frames, AgentEvent Spawned)> HandshakeAsync(AgentRequest request, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(CallTimeout);
        FrameSocket? frames = null;
        try
        {
            frames = await ConnectAsync(deadline.Token);
            await WriteAsync(frames, request, deadline.Token);
            var ev = Expect(await ReadFirstAsync(frames, deadline.Token), AgentEvent.KindOneofCase.Spawned);
            return (frames, ev);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            frames?.Dispose();
            throw TimedOut(e);
        }
        catch
        {
            frames?.Dispose();
            throw;
        }
    }

    /// <summary>Follows the agent's log into <paramref name="logFile"/> until disposed (see <see cref="AgentLogFollower"/>).</summary>
    public IAsyncDisposable FollowLog(string logFile, Action<string>? problem = null) => AgentLogFollower.Start(this, logFile, problem);

    /// <summary>Opens a FollowLog connection; returns it with the first LogLines (within the deadline).</summary>
    internal async Task<(FrameSocket Frames, LogLines First)> OpenLogAsync(CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(CallTimeout);
        FrameSocket? frames = null;
        try
        {
            frames = await ConnectAsync(deadline.Token);
            await WriteAsync(frames, new AgentRequest { FollowLog = new FollowLogRequest() }, deadline.Token);
            var ev = Expect(await ReadFirstAsync(frames, deadline.Token), AgentEvent.KindOneofCase.Log);
            return (frames, ev.Log);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            frames?.Dispose();
            throw TimedOut(e);
        }
        catch
        {
            frames?.Dispose();
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

    public async Task<IReadOnlyList<ProcessEntry>> WaitExitsAsync(TimeSpan wait, CancellationToken ct)
    {
        var ms = (uint)Math.Clamp(wait.TotalMilliseconds, 1, 600_000);
        // the answer may take the whole wait: the deadline is the wait plus the usual one
        var ev = await RequestAsync(new AgentRequest { WaitExits = new WaitExitsRequest { TimeoutMs = ms } }, ct,
            TimeSpan.FromMilliseconds(ms) + CallTimeout);
        return Expect(ev, AgentEvent.KindOneofCase.List).List.Processes;
    }

    private async Task<AgentEvent> RequestAsync(AgentRequest request, CancellationToken ct, TimeSpan? timeout = null)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout ?? CallTimeout);
        try
        {
            using var frames = await ConnectAsync(deadline.Token);
            await WriteAsync(frames, request, deadline.Token);
            return await ReadFirstAsync(frames, deadline.Token);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw TimedOut(e);
        }
    }

    private AgentUnavailableException TimedOut(Exception e) => new(SocketPath,
        $"no answer within {CallTimeout.TotalSeconds:0.###}s (the agent is frozen or starved)", e, timedOut: true);

    private async Task WriteAsync(FrameSocket frames, AgentRequest request, CancellationToken ct)
    {
        try
        {
            await frames.WriteAsync(request, ct);
        }
        catch (SocketException e)
        {
            throw new AgentUnavailableException(SocketPath, e.Message, e);
        }
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
        catch (InvalidDataException e)
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
        // a frame points into the connection's pooled receive buffer, which its dispose gives back for another connection
        // (another container's) to fill: a dispose from another flow (a detach while the pump reads) waits until the frame
        // read is parsed, and a read that completes after the dispose is not parsed
        private readonly object _gate = new();
        private bool _disposed;

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
            AgentEvent ev;
            lock (_gate)
            {
                if (_disposed)
                {
                    _ended = true;
                    return null;
                }
                ev = AgentEvent.Parser.ParseFrom(frame.Value.Span);
            }
            return Check(ev);
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

        /// <summary>The data is wrapped, not copied: the frame is serialized into the send buffer before this returns, and
        /// nothing keeps the message after.</summary>
        public ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct) =>
            frames.WriteAsync(new AgentRequest { Input = new StdinInput { Data = UnsafeByteOperations.UnsafeWrap(data) } }, ct);

        public ValueTask CloseStdinAsync(CancellationToken ct) =>
            frames.WriteAsync(new AgentRequest { Input = new StdinInput { Close = true } }, ct);

        public ValueTask ResizeAsync(uint rows, uint cols, CancellationToken ct) =>
            frames.WriteAsync(new AgentRequest { Resize = new ResizeRequest { Rows = rows, Cols = cols } }, ct);

        public ValueTask DisposeAsync()
        {
            lock (_gate) _disposed = true;
            frames.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
