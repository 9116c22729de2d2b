using System.Net.Sockets;
using Garden.Protocol.Agent;
using Tmds.Linux;
using Google.Protobuf;

namespace Garden.Agent;

/// <summary>Serves the daemon on the agent's Unix socket: one connection per operation. Only the host's root, from outside
/// the container, is served (<see cref="HostRoot"/>).</summary>
internal sealed class Server(ProcessTable table, Spawner spawner, HostRoot hostRoot, bool pea = false)
{
    public const string Version = "0.1.0";
    private const int SendBatchBytes = 256 * 1024;

    private long _connections;

    public async Task RunAsync(Socket listener)
    {
        while (true)
        {
            Socket s;
            try
            {
                s = await listener.AcceptAsync();
            }
            catch (Exception e)
            {
                AgentLog.Error($"accept: {e.Message}");
                await Task.Delay(50);
                continue;
            }
            long n = Interlocked.Increment(ref _connections);
            _ = Task.Run(() => HandleAsync(s, n));
        }
    }

    private async Task HandleAsync(Socket socket, long n)
    {
        using var conn = new FrameSocket(socket);
        try
        {
            var (peerPid, peerUid) = PeerCred(socket);
            if (peerPid != 0)
            {
                AgentLog.Warn($"conn {n}: refused peer pid {peerPid}: it is inside the container");
                return;
            }
            if (peerUid != hostRoot.Uid)
            {
                AgentLog.Warn($"conn {n}: refused peer uid {peerUid}: only the host's root (uid {hostRoot.Uid} here) is served");
                return;
            }

            AgentRequest req;
            var frame = await conn.ReadFrameAsync(CancellationToken.None);
            if (frame == null) return;
            try
            {
                req = AgentRequest.Parser.ParseFrom(frame.Value.Span);
            }
            catch (InvalidProtocolBufferException e)
            {
                throw new InvalidDataException($"malformed request: {e.Message}");
            }

            switch (req.KindCase)
            {
                case AgentRequest.KindOneofCase.Ping:
                    await conn.WriteAsync(new AgentEvent { Pong = new Pong { AgentPid = Environment.ProcessId, Version = Version } }, default);
                    break;
                case AgentRequest.KindOneofCase.List:
                    var list = table.List();
                    await conn.WriteAsync(new AgentEvent { List = list }, default);
                    // the daemon has these exits now
                    table.ExitsReported(list);
                    break;
                case AgentRequest.KindOneofCase.FollowLog:
                    AgentLog.Info($"conn {n}: the daemon follows the log");
                    await FollowLogAsync(conn);
                    break;
                case AgentRequest.KindOneofCase.Signal:
                    await SignalAsync(conn, req.Signal);
                    break;
                case AgentRequest.KindOneofCase.Spawn:
                    await SpawnAsync(conn, req.Spawn, n);
                    break;
                case AgentRequest.KindOneofCase.Attach:
                    var target = table.Find(req.Attach.Id)
                        ?? throw new AgentErrorException(ErrorCode.NotFound, $"no process {req.Attach.Id}");
                    AgentLog.Info($"conn {n}: attach {target.Id} from {req.Attach.FromOffset}");
                    await conn.WriteAsync(new AgentEvent { Spawned = new Spawned { Id = target.Id, Pid = target.Pid } }, default);
                    await StreamAsync(conn, target, (long)req.Attach.FromOffset, owner: false);
                    break;
                case AgentRequest.KindOneofCase.Resize:
                    var tty = table.Find(req.Resize.Id) ?? throw new AgentErrorException(ErrorCode.NotFound, $"no process {req.Resize.Id}");
                    if (!tty.Tty) throw new AgentErrorException(ErrorCode.Invalid, $"process {tty.Id} has no terminal to resize");
                    if (req.Resize.Rows == 0 || req.Resize.Cols == 0)
                        throw new AgentErrorException(ErrorCode.Invalid, $"a terminal of {req.Resize.Rows}x{req.Resize.Cols} has no room");
                    tty.Resize(req.Resize.Rows, req.Resize.Cols);
                    AgentLog.Info($"conn {n}: resize {tty.Id} to {req.Resize.Rows}x{req.Resize.Cols}");
                    await conn.WriteAsync(new AgentEvent { Ack = new Ack() }, default);
                    break;
                default:
                    throw new InvalidDataException($"unexpected first request {req.KindCase}");
            }
        }
        catch (AgentErrorException e)
        {
            AgentLog.Info($"conn {n}: {e.Code}: {e.Message}");
            await TrySendError(conn, e.Code, e.Message);
        }
        catch (InvalidDataException e)
        {
            AgentLog.Warn($"conn {n}: invalid: {e.Message}");
            await TrySendError(conn, ErrorCode.Invalid, e.Message);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or IOException)
        {
            AgentLog.Info($"conn {n}: closed: {e.Message}");
        }
        catch (Exception e)
        {
            AgentLog.Error($"conn {n}: {e}");
            await TrySendError(conn, ErrorCode.Internal, e.Message);
        }
    }

    private static async Task TrySendError(FrameSocket conn, ErrorCode code, string message)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await conn.WriteAsync(new AgentEvent { Error = new AgentError { Code = code, Message = message } }, cts.Token);
        }
        catch
        {
        }
    }

    private async Task SignalAsync(FrameSocket conn, SignalRequest req)
    {
        if (req.All)
        {
            if (req.Signal <= 0 || req.Signal > 64) throw new AgentErrorException(ErrorCode.Invalid, $"bad signal {req.Signal}");
            // As PID 1 of the container, kill(-1) reaches every process in it except the agent itself. A pea's agent is
            // not PID 1 (it shares its container's pid namespace): kill(-1) would reach the container's processes, so it
            // signals only its own ones.
            int e = 0;
            if (!pea) e = Native.Kill(-1, req.Signal);
            else
                foreach (var own in table.All())
                    if (own.Output.Exit == null && Native.Kill(own.Pid, req.Signal) is var err and not 0 && err != LibC.ESRCH) e = err;
            if (e != 0 && e != LibC.ESRCH) throw new AgentErrorException(ErrorCode.Internal, $"kill -1: {Native.ErrorText(e)}");
            AgentLog.Info($"every process: signal {req.Signal}");
            await conn.WriteAsync(new AgentEvent { Ack = new Ack() }, default);
            return;
        }
        var p = table.Find(req.Id) ?? throw new AgentErrorException(ErrorCode.NotFound, $"no process {req.Id}");
        if (req.Signal <= 0 || req.Signal > 64) throw new AgentErrorException(ErrorCode.Invalid, $"bad signal {req.Signal}");
        if (p.Output.Exit == null)
        {
            int err = Native.Kill(p.Pid, req.Signal);
            if (err != 0 && err != LibC.ESRCH) throw new AgentErrorException(ErrorCode.Internal, $"kill {p.Pid}: {Native.ErrorText(err)}");
            AgentLog.Info($"process {p.Id}: signal {req.Signal}");
        }
        await conn.WriteAsync(new AgentEvent { Ack = new Ack() }, default);
    }

    private async Task SpawnAsync(FrameSocket conn, SpawnRequest req, long n)
    {
        var p = spawner.Spawn(req);
        await conn.WriteAsync(new AgentEvent { Spawned = new Spawned { Id = p.Id, Pid = p.Pid } }, default);
        if (req.Attach) await StreamAsync(conn, p, 0, owner: req.KeepStdin);
    }

    /// <summary>Streams the log until the daemon closes the connection or a newer follower comes.</summary>
    private static async Task FollowLogAsync(FrameSocket conn)
    {
        using var gone = new CancellationTokenSource();
        // the daemon sends nothing more: a read ends when it goes
        var watch = Task.Run(async () =>
        {
            try
            {
                while (await conn.ReadFrameAsync(gone.Token) != null)
                {
                }
            }
            catch
            {
            }
            finally
            {
                gone.Cancel();
            }
        });
        try
        {
            await AgentLog.FollowAsync(conn, gone.Token);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            gone.Cancel();
            conn.Dispose();
            await watch;
        }
    }

    /// <summary>Streams output from an offset, then Exited; meanwhile takes input and resize frames.</summary>
    private async Task StreamAsync(FrameSocket conn, ManagedProcess p, long from, bool owner)
    {
        using var gone = new CancellationTokenSource();
        var receive = ReceiveLoopAsync(conn, p, owner, gone);
        table.StreamStarted(p);
        try
        {
            if (await SendLoopAsync(conn, p, from, gone.Token)) table.ExitReported(p);
        }
        catch (OperationCanceledException)
        {
            // the daemon went away
        }
        finally
        {
            table.StreamStopped(p);
            gone.Cancel();
            conn.Dispose();
            await receive;
        }
    }

    /// <summary>True once Exited was written: the process's exit reached the daemon.</summary>
    private static async Task<bool> SendLoopAsync(FrameSocket conn, ManagedProcess p, long pos, CancellationToken ct)
    {
        var slices = new List<OutputBuffer.Slice>();
        var frames = new List<IMessage>();
        while (true)
        {
            var snap = p.Output.Take(pos, SendBatchBytes, slices);
            frames.Clear();
            if (snap.Missed)
            {
                frames.Add(new AgentEvent { Missed = new OutputMissed { From = (ulong)snap.MissedFrom, To = (ulong)snap.MissedTo } });
            }
            foreach (var s in slices)
            {
                frames.Add(new AgentEvent
                {
                    Output = new OutputChunk { Stream = s.Stream, Offset = (ulong)s.Offset, Data = UnsafeByteOperations.UnsafeWrap(s.Data) },
                });
            }
            if (snap.Exit != null) frames.Add(new AgentEvent { Exited = snap.Exit });

            if (frames.Count > 0)
            {
                await conn.WriteManyAsync(frames, ct);
                pos = snap.NewPosition;
                if (slices.Count > 0) p.Output.MarkSent(pos);
                if (snap.Exit != null) return true;
                continue;
            }
            await snap.Changed.WaitAsync(ct);
        }
    }

    private static async Task ReceiveLoopAsync(FrameSocket conn, ManagedProcess p, bool owner, CancellationTokenSource gone)
    {
        await Task.Yield();
        try
        {
            while (!gone.IsCancellationRequested)
            {
                var frame = await conn.ReadFrameAsync(gone.Token);
                if (frame == null) break;
                AgentRequest req;
                try
                {
                    req = AgentRequest.Parser.ParseFrom(frame.Value.Span);
                }
                catch (InvalidProtocolBufferException e)
                {
                    throw new InvalidDataException($"malformed frame: {e.Message}");
                }
                switch (req.KindCase)
                {
                    case AgentRequest.KindOneofCase.Input:
                        // the parsed ByteString owns a fresh copy of the frame: queue it as is rather than copying it again
                        await p.WriteStdinAsync(req.Input.Data.Memory, req.Input.Close, gone.Token);
                        break;
                    case AgentRequest.KindOneofCase.Resize:
                        p.Resize(req.Resize.Rows, req.Resize.Cols);
                        break;
                    default:
                        throw new InvalidDataException($"unexpected request {req.KindCase} on a stream");
                }
            }
        }
        catch (InvalidDataException e)
        {
            AgentLog.Warn($"process {p.Id} stream: invalid: {e.Message}");
            await TrySendError(conn, ErrorCode.Invalid, e.Message);
        }
        catch (Exception)
        {
            // closed by either side
        }
        finally
        {
            gone.Cancel();
            if (owner) p.CloseStdin();
        }
    }

    private static (int Pid, uint Uid) PeerCred(Socket socket)
    {
        Span<byte> cred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        const int SOL_SOCKET = 1, SO_PEERCRED = 17;
        int len = socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, cred);
        if (len < 8) return (-1, uint.MaxValue);
        return (BitConverter.ToInt32(cred), BitConverter.ToUInt32(cred[4..]));
    }
}
