using System.Net.Sockets;
using System.Runtime.InteropServices;
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

    /// <summary>Output frames carry at most this much (small pipe reads are merged up to it): every reader parses a frame's
    /// data into an array of its own (gardend, and gRPC's clients after it, message by message), and below .NET's
    /// large-object threshold (85,000 bytes) those arrays die young instead of piling up until a full collection.
    /// Measured: 256 KiB frames made the agent-alone probe's client slower (400 MB/s against 500-1200).</summary>
    private const int OutputFrameBytes = 64 * 1024;

    private long _connections;

    /// <summary>Serves connections until the agent exits. Each connection is served on the thread its accept completed on
    /// (after that thread started the next accept): a Spawn is read, forked and answered there, with no hand-off to
    /// another pool thread in between (each hand-off wakes a sleeping thread, which a Run paid for on its critical path:
    /// bench/FINDINGS-run.md). A connection that was already waiting when an accept was made (a burst) goes to the
    /// pool, so one connection's spawn never holds up the accepts of the others.</summary>
    public Task RunAsync(Socket listener)
    {
        AcceptNext(listener);
        return new TaskCompletionSource().Task;
    }

    private void AcceptNext(Socket listener)
    {
        while (true)
        {
            ValueTask<Socket> accept;
            try
            {
                accept = listener.AcceptAsync(CancellationToken.None);
            }
            catch (Exception e)
            {
                _ = AcceptLaterAsync(listener, e);
                return;
            }
            if (!accept.IsCompleted)
            {
                // the usual case: its completion serves the connection on the thread it completes on
                _ = ServeWhenAcceptedAsync(listener, accept);
                return;
            }
            Socket s;
            try
            {
                s = accept.Result;
            }
            catch (Exception e)
            {
                _ = AcceptLaterAsync(listener, e);
                return;
            }
            long n = Interlocked.Increment(ref _connections);
            _ = Task.Run(() => HandleAsync(s, n));
        }
    }

    private async Task ServeWhenAcceptedAsync(Socket listener, ValueTask<Socket> accept)
    {
        Socket s;
        try
        {
            s = await accept;
        }
        catch (Exception e)
        {
            await AcceptLaterAsync(listener, e);
            return;
        }
        long n = Interlocked.Increment(ref _connections);
        // the next accept first: it is pending at once unless another connection waits (then that one goes to the pool)
        AcceptNext(listener);
        await HandleAsync(s, n);
    }

    private async Task AcceptLaterAsync(Socket listener, Exception e)
    {
        AgentLog.Error($"accept: {e.Message}");
        await Task.Delay(50);
        AcceptNext(listener);
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
                    // gardend's Create waits for this answer; the first Run comes right after it, and finds its threads
                    // started and the users read (once per agent; after the answer, so the Create does not wait for them)
                    if (Interlocked.Exchange(ref _readied, 1) == 0) ReadyForTheFirstProcess(n);
                    break;
                case AgentRequest.KindOneofCase.List:
                    var list = table.List();
                    await conn.WriteAsync(new AgentEvent { List = list }, default);
                    // the daemon has these exits now
                    table.ExitsReported(list);
                    break;
                case AgentRequest.KindOneofCase.WaitExits:
                    await WaitExitsAsync(conn, req.WaitExits);
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
        finally
        {
            // an operation ended: what it allocated goes back to the kernel once the agent is quiet
            MemoryTrim.Poke();
        }
    }

    private int _readied;

    /// <summary>What a container's first process would otherwise do first: start its worker threads, read and parse
    /// /etc/passwd and /etc/group (kept while they stay the same), and start the runtime's timer thread. Nothing of the
    /// container runs.</summary>
    private static void ReadyForTheFirstProcess(long n)
    {
        int started = Workers.Prestart();
        StartTimerThread();
        GrowThreadPool(ThreadPoolForARun);
        try
        {
            Users.Resolve("");
        }
        catch (AgentErrorException)
        {
            // no root in /etc/passwd: the first process's spawn says so
        }
        AgentLog.Info($"conn {n}: {started} idle workers and the timer thread started for the first process, users read");
    }

    /// <summary>The runtime starts its timer thread (".NET Timer") for the first timer of the process, and every Run
    /// arms one: gardend's wait for exits (WaitExits, a timed wait) comes right after Spawned, and an exit whose output
    /// is still open arms the 1 s safety net of <see cref="ManagedProcess.OnReaped"/>. So the first Run of every container
    /// started a thread on its exit path (seen in /proc/&lt;agent&gt;/task after it); a timer due at once starts it here
    /// instead. An agent that runs anything keeps that thread anyway.</summary>
    private static void StartTimerThread() => _ = Task.Delay(1);

    /// <summary>Thread-pool workers a Run keeps busy at once: its spawn holds one while the fork+exec is confirmed (a
    /// blocking wait, 0.3-1.5 ms), beside its connection's and gardend's wait for exits.</summary>
    public const int ThreadPoolForARun = 3;

    /// <summary>The pool keeps a worker per core once the agent is up (two here), and started another during every
    /// first Run (seen in /proc/&lt;agent&gt;/task: a new ".NET TP Worker" before the process's fork); this makes the pool
    /// hold <paramref name="workers"/> now: as many work items that wait for each other (50 ms at most) make it start
    /// the ones missing, up to its minimum, which is raised to that. Idle workers still end after the pool's timeout
    /// (20 s), as before.</summary>
    private static void GrowThreadPool(int workers)
    {
        ThreadPool.GetMinThreads(out int min, out int io);
        if (min < workers) ThreadPool.SetMinThreads(workers, io);
        // not disposed: a work item may still be waiting on it when this returns
        var together = new CountdownEvent(workers);
        for (int i = 1; i < workers; i++)
            ThreadPool.UnsafeQueueUserWorkItem(static t =>
            {
                t.Signal();
                t.Wait(50);
            }, together, preferLocal: false);
        together.Signal();
        together.Wait(50);
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

    /// <summary>On a connection where the daemon sends nothing more after its request: cancels <paramref name="gone"/> when
    /// a read ends, i.e. when the daemon closed it (or when gone is cancelled by the caller).</summary>
    private static Task WatchDaemonGone(FrameSocket conn, CancellationTokenSource gone) => Task.Run(async () =>
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

    /// <summary>Default and longest wait of a WaitExits request.</summary>
    public static readonly TimeSpan WaitExitsDefault = TimeSpan.FromSeconds(60), WaitExitsMax = TimeSpan.FromSeconds(600);

    /// <summary>Answers the List once an unreported exit is there (or at the timeout); stops waiting when the daemon
    /// closes the connection. While it waits no read is pending with data, so the connection holds no receive buffer.</summary>
    private async Task WaitExitsAsync(FrameSocket conn, WaitExitsRequest req)
    {
        var timeout = req.TimeoutMs == 0 ? WaitExitsDefault : TimeSpan.FromMilliseconds(Math.Min(req.TimeoutMs, WaitExitsMax.TotalMilliseconds));
        using var gone = new CancellationTokenSource();
        var watch = WatchDaemonGone(conn, gone);
        try
        {
            await table.WaitUnreportedExitAsync(timeout, gone.Token);
            if (gone.IsCancellationRequested) return;
            var list = table.List();
            await conn.WriteAsync(new AgentEvent { List = list }, default);
            // the daemon has these exits now
            table.ExitsReported(list);
        }
        finally
        {
            gone.Cancel();
            conn.Dispose();
            await watch;
        }
    }

    /// <summary>Streams the log until the daemon closes the connection or a newer follower comes.</summary>
    private static async Task FollowLogAsync(FrameSocket conn)
    {
        using var gone = new CancellationTokenSource();
        var watch = WatchDaemonGone(conn, gone);
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
            // the receive loop ends first (the cancel ends its read, or its stdin write): a frame it read points into the
            // connection's pooled receive buffer, which the dispose gives back for another connection to fill
            try
            {
                await receive;
            }
            finally
            {
                conn.Dispose();
            }
        }
    }

    /// <summary>True once Exited was written: the process's exit reached the daemon. Each batch is one send: a gap, then
    /// the output as one frame per run of one stream (however many pipe reads it took), then the exit once everything is
    /// out; the bytes are copied once, from the buffer's chunks into the send buffer.</summary>
    private static async Task<bool> SendLoopAsync(FrameSocket conn, ManagedProcess p, long pos, CancellationToken ct)
    {
        var slices = new List<OutputBuffer.Slice>();
        var run = new List<ReadOnlyMemory<byte>>();
        // this stream's own send buffer, grown as its batches need: dropped with the stream (not pooled: ArrayPool.Shared
        // would keep a 512 KiB array per thread that ever sent a full batch, for good, in every container's agent)
        byte[] buf = [];
        while (true)
        {
            var snap = p.Output.Take(pos, SendBatchBytes, slices);
            var missed = snap.Missed
                ? new AgentEvent { Missed = new OutputMissed { From = (ulong)snap.MissedFrom, To = (ulong)snap.MissedTo } }
                : null;
            var exited = snap.Exit != null ? new AgentEvent { Exited = snap.Exit } : null;
            if (missed == null && exited == null && slices.Count == 0)
            {
                await snap.Changed.WaitAsync(ct);
                continue;
            }

            int size = (missed != null ? 4 + missed.CalculateSize() : 0) + (exited != null ? 4 + exited.CalculateSize() : 0);
            foreach (var s in slices) size += s.Data.Length + StreamFrames.OutputOverhead;
            if (buf.Length < size) buf = new byte[Math.Max(size, Math.Min(Math.Max(2 * buf.Length, 4096), SendBatchBytes + SendBatchBytes / 8))];
            int at = 0;
            if (missed != null) at += FrameSocket.WriteFrame(buf.AsSpan(at), missed);
            for (int i = 0; i < slices.Count;)
            {
                var first = slices[i];
                run.Clear();
                int bytes = 0;
                for (; i < slices.Count && slices[i].Stream == first.Stream
                       && (run.Count == 0 || bytes + slices[i].Data.Length <= OutputFrameBytes); i++)
                {
                    run.Add(slices[i].Data);
                    bytes += slices[i].Data.Length;
                }
                at += StreamFrames.WriteOutput(buf.AsSpan(at), first.Stream, first.Offset, CollectionsMarshal.AsSpan(run));
            }
            if (exited != null) at += FrameSocket.WriteFrame(buf.AsSpan(at), exited);
            await conn.WriteFramedAsync(buf.AsMemory(0, at), ct);
            pos = snap.NewPosition;
            if (slices.Count > 0) p.Output.MarkSent(pos);
            if (exited != null) return true;
        }
    }

    /// <summary>Runs on the caller's thread up to its first read that waits, with no hand-off to the pool first: what the
    /// daemon sent already (a client's stdin, or its close) is taken here, then the read waits and the stream's send
    /// loop starts.</summary>
    private static async Task ReceiveLoopAsync(FrameSocket conn, ManagedProcess p, bool owner, CancellationTokenSource gone)
    {
        try
        {
            while (!gone.IsCancellationRequested)
            {
                var frame = await conn.ReadFrameAsync(gone.Token);
                if (frame == null) break;
                if (StreamFrames.TryReadInput(frame.Value.Span, out var data, out bool close))
                {
                    // stdin, the common frame of a stream: its bytes go from the receive buffer to the process's stdin
                    // writer with one copy (WriteStdinAsync copies before the next read reuses the buffer)
                    await p.WriteStdinAsync(frame.Value.Span[data], close, gone.Token);
                    continue;
                }
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
                        await p.WriteStdinAsync(req.Input.Data.Span, req.Input.Close, gone.Token);
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
