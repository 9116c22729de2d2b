using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Garden.Actors;
using Microsoft.Extensions.Logging;
using Api = Garden.Protocol.Api;

namespace Garden.Host.GardenHttp;

/// <summary>Run, Attach and the output streams: Garden's process protocol (garden-http-spec §6).
/// <para>Run/Attach answer with a head and the first message <c>{"process_id","stream_id"}</c>, then the connection
/// carries newline-delimited JSON both ways: from the client stdin, end of stdin, TERM/KILL and terminal sizes; to the
/// client, last, the exit status (or an error). Stdout and stderr travel on requests of their own,
/// <c>…/attaches/STREAM/stdout|stderr</c>, which the client makes after Run has answered: a stream id ties them to
/// the Run/Attach, and each output stream is held in an <see cref="OutputBuffer"/> from the start until they come.</para>
/// <para>The exit status is written after every output byte is in those buffers, and the buffers then end, so the
/// stdout/stderr requests close after their last byte (the client's Wait waits for both). When the client goes away
/// first the process keeps running (it can be attached again); its streams end.</para></summary>
public sealed class ProcessStreams(IGardenHttpBackend backend, GardenHttpOptions options, ILogger log, CancellationToken stopping)
{
    private readonly ConcurrentDictionary<string, StreamSession> _sessions = new();
    private long _lastStreamId;

    /// <summary>Stream ids that still answer stdout/stderr requests (live, or ended within the retention time).</summary>
    public int Count => _sessions.Count;

    private sealed class StreamSession(string id, string handle, string processId, int capacity)
    {
        public string Id { get; } = id;
        public string Handle { get; } = handle;
        public string ProcessId { get; } = processId;
        public OutputBuffer Stdout { get; } = new(capacity);
        public OutputBuffer Stderr { get; } = new(capacity);

        public void Complete()
        {
            Stdout.Complete();
            Stderr.Complete();
        }
    }

    /// <summary>How a process stream ended: an exit status, a failure to say to the client, or the client's going.</summary>
    private readonly record struct Outcome(int? ExitStatus, string? Error)
    {
        public static readonly Outcome Cancelled = new(null, null);
    }

    public async Task ServeRunAsync(HttpConnection conn, RouteMatch m, HttpRequestHead head)
    {
        var handle = m.Handle!;
        IGardenProcess process;
        try
        {
            var spec = await GardenHandlers.ReadJsonAsync(conn.Body(head, options.JsonBodyTimeout), GardenJsonContext.Wire.ProcessSpec,
                "ProcessSpec", options) ?? new ProcessSpec();
            process = await backend.RunAsync(GardenConvert.ToRun(handle, spec), conn.Aborted);
        }
        catch (Exception e) when (e is not OperationCanceledException || !conn.Aborted.IsCancellationRequested)
        {
            log.LogDebug("garden-http: run in {Handle} refused: {Error}", handle, e.Message);
            await conn.SendErrorAsync(e, hijackRoute: true);
            return;
        }
        await ServeProcessAsync(conn, handle, process, 201);
    }

    public async Task ServeAttachAsync(HttpConnection conn, RouteMatch m)
    {
        var (handle, pid) = (m.Handle!, m["pid"]);
        IGardenProcess process;
        try
        {
            process = await backend.AttachAsync(GardenConvert.ToAttach(handle, pid), conn.Aborted);
        }
        catch (Exception e) when (e is not OperationCanceledException || !conn.Aborted.IsCancellationRequested)
        {
            log.LogDebug("garden-http: attach to {Process} in {Handle} refused: {Error}", pid, handle, e.Message);
            await conn.SendErrorAsync(e, hijackRoute: true, processId: pid);
            return;
        }
        await ServeProcessAsync(conn, handle, process, 200);
    }

    private async Task ServeProcessAsync(HttpConnection conn, string handle, IGardenProcess process, int status)
    {
        var id = Interlocked.Increment(ref _lastStreamId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var session = new StreamSession(id, handle, process.ProcessId, options.OutputBufferBytes);
        _sessions[id] = session;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(conn.Aborted);
        var stdin = new StdinForwarder(process, options.MaxPendingStdinBytes, stop.Token);
        var exited = new Flag();
        Task<Outcome>? pump = null;
        Task? input = null;
        log.LogDebug("garden-http: process {Process} in {Handle}: stream {Stream} for {Peer}", process.ProcessId, handle, id, conn.Peer);
        try
        {
            var first = HttpConnection.Json(new ProcessPayload { ProcessID = process.ProcessId, StreamID = id }, GardenJsonContext.Wire.ProcessPayload);
            try
            {
                await conn.WriteAsync(Concat(HttpWire.HijackHead(status, HttpWire.Json), first));
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                return;   // gone before the first message
            }
            pump = PumpAsync(process, session, stop.Token);
            input = ReadPayloadsAsync(conn, handle, process, stdin, exited, stop.Token);
            if (await Task.WhenAny(pump, input) != pump)
            {
                log.LogDebug("garden-http: the client of stream {Stream} ({Process} in {Handle}) went away; the process keeps running",
                    id, process.ProcessId, handle);
                return;
            }
            var outcome = await pump;
            exited.Value = true;
            // every output byte is in the buffers: they may end, and the stdout/stderr requests close after their last byte
            session.Complete();
            if (outcome == Outcome.Cancelled) return;
            var last = outcome.ExitStatus is { } code
                ? new ProcessPayload { ProcessID = process.ProcessId, ExitStatus = code }
                : new ProcessPayload { ProcessID = process.ProcessId, Error = outcome.Error };
            try
            {
                await conn.WriteAsync(HttpConnection.Json(last, GardenJsonContext.Wire.ProcessPayload));
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                return;
            }
            // The client closes after reading this; until then it may still be writing stdin, which is read and
            // dropped (closing on unread bytes would reset the connection and could destroy the exit status in flight).
            conn.ShutdownSend();
            await Task.WhenAny(input, Task.Delay(options.LingerTimeout, stop.Token));
            conn.Lingered();
        }
        finally
        {
            await stop.CancelAsync();
            session.Complete();
            foreach (var t in new Task?[] { pump, input })
            {
                try
                {
                    if (t is not null) await t;
                }
                catch (Exception)
                {
                    // each ends on the cancellation; what it failed with was logged where it happened
                }
            }
            await stdin.DisposeAsync();
            try
            {
                await process.DisposeAsync();
            }
            catch (Exception e)
            {
                log.LogDebug("garden-http: detaching stream {Stream}: {Error}", id, e.Message);
            }
            _ = ForgetLaterAsync(session);
        }
    }

    /// <summary>A stream id stays for <see cref="GardenHttpOptions.StreamRetention"/> after its connection ended, for a
    /// stdout/stderr request that comes late; then its buffers go.</summary>
    private async Task ForgetLaterAsync(StreamSession session)
    {
        try
        {
            await Task.Delay(options.StreamRetention, stopping);
        }
        catch (OperationCanceledException)
        {
        }
        _sessions.TryRemove(new KeyValuePair<string, StreamSession>(session.Id, session));
        session.Stdout.DetachReader();
        session.Stderr.DetachReader();
    }

    /// <summary>The process's events into the stream's buffers, until its exit.</summary>
    private async Task<Outcome> PumpAsync(IGardenProcess process, StreamSession session, CancellationToken ct)
    {
        long missed = 0;
        try
        {
            await foreach (var e in process.Events.WithCancellation(ct))
            {
                switch (e.KindCase)
                {
                    case Api.ProcessEvent.KindOneofCase.Output:
                        var buffer = e.Output.Stream == Api.Output.Types.Stream.Stderr ? session.Stderr : session.Stdout;
                        await buffer.WriteAsync(e.Output.Data.Memory, ct);
                        break;
                    case Api.ProcessEvent.KindOneofCase.Missed:
                        missed += (long)(e.Missed.To - e.Missed.From);
                        break;
                    case Api.ProcessEvent.KindOneofCase.Exited:
                        if (missed > 0 || session.Stdout.Dropped + session.Stderr.Dropped > 0)
                            log.LogInformation("garden-http: process {Process} in {Handle}: stream {Stream} lost {Missed} bytes the agent no longer held and dropped {Dropped} nobody asked for in time",
                                session.ProcessId, session.Handle, session.Id, missed, session.Stdout.Dropped + session.Stderr.Dropped);
                        return new Outcome(e.Exited.ExitCode, null);
                }
            }
            return new Outcome(null, "the process's event stream ended before its exit status");
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Outcome.Cancelled;
        }
        catch (Exception e)
        {
            log.LogInformation("garden-http: process {Process} in {Handle}: its events failed: {Error}", session.ProcessId, session.Handle, e.Message);
            return new Outcome(null, e.Message);
        }
    }

    /// <summary>The client's payloads, until it closes the connection (or sends what is not a payload: guardian ends
    /// the stream then too). Stdin goes through the <see cref="StdinForwarder"/> so that a signal is never stuck
    /// behind stdin the process does not read; after the exit everything is read and dropped.</summary>
    private async Task ReadPayloadsAsync(HttpConnection conn, string handle, IGardenProcess process, StdinForwarder stdin,
        Flag exited, CancellationToken ct)
    {
        var pid = process.ProcessId;
        while (true)
        {
            byte[]? line;
            try
            {
                line = await conn.Reader.ReadLineAsync(options.MaxPayloadLineBytes, ct);
            }
            catch (InvalidDataException e)
            {
                log.LogInformation("garden-http: process {Process} in {Handle}: payload refused ({Error}); the stream ends", pid, handle, e.Message);
                return;
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            if (line is null) return;
            if (exited.Value || line.AsSpan().Trim(" \t\r"u8).IsEmpty) continue;
            ProcessPayload? p;
            try
            {
                p = JsonSerializer.Deserialize(line, GardenJsonContext.Wire.ProcessPayload);
            }
            catch (JsonException e)
            {
                log.LogInformation("garden-http: process {Process} in {Handle}: not a payload ({Error}); the stream ends", pid, handle, e.Message);
                return;
            }
            if (p is null) continue;
            if (p.TTY?.WindowSize is { } size)
                await Try("resize", () => backend.SetTtyAsync(new Api.SetTtyRequest { Handle = handle, ProcessId = pid, Size = GardenConvert.ToTty(size, "tty.window_size") }, ct));
            if (p.Source == 0)
            {
                if (p.Data is { } data) await stdin.WriteAsync(Encoding.UTF8.GetBytes(data));
                else stdin.Close();
            }
            if (p.Signal is { } garden)
            {
                if (GardenConvert.SignalNumber(garden) is { } signal)
                    await Try("signal", () => backend.SignalAsync(new Api.SignalRequest { Handle = handle, ProcessId = pid, Signal = signal }, ct));
                else
                    log.LogInformation("garden-http: process {Process} in {Handle}: signal {Signal} is not Garden's (0 TERM, 1 KILL); ignored", pid, handle, garden);
            }
        }

        async Task Try(string what, Func<Task> call)
        {
            try
            {
                await call();
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // e.g. the process exited meanwhile: nothing the client could act on
                log.LogDebug("garden-http: {What} of {Process} in {Handle}: {Error}", what, pid, handle, e.Message);
            }
        }
    }

    /// <summary>GET …/attaches/STREAM/stdout|stderr: a 200 head, then the raw output of that stream until it ends,
    /// then the connection closes. An unknown (or expired, or taken) stream gets the head and the close at once —
    /// never an error: the Go client treats a failed stream request as the process's end.</summary>
    public async Task ServeOutputAsync(HttpConnection conn, RouteMatch m, bool stderr)
    {
        // The reader's place is claimed before the head goes out: a client that has read its head owns the stream, and
        // a second request for it, even one answered first, gets the head and the end.
        OutputBuffer? buffer = null;
        if (_sessions.TryGetValue(m["streamid"], out var session) && session.Handle == m.Handle && session.ProcessId == m["pid"])
        {
            var candidate = stderr ? session.Stderr : session.Stdout;
            if (candidate.TryAttachReader()) buffer = candidate;
        }
        else
            log.LogDebug("garden-http: no stream {Stream} of {Process} in {Handle} (unknown or expired)", m["streamid"], m["pid"], m.Handle);
        try
        {
            await conn.WriteAsync(HttpWire.HijackHead(200, null));
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            buffer?.DetachReader();
            return;
        }
        if (buffer is null) return;
        // The client never writes on this connection: a read that ends means it went away, and its output is dropped
        // from then on rather than held for nobody.
        using var gone = CancellationTokenSource.CreateLinkedTokenSource(conn.Aborted);
        var watch = WatchCloseAsync(conn, gone);
        try
        {
            while (await buffer.ReadAsync(gone.Token) is { } chunk)
                await conn.WriteAsync(chunk);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // the client went away
        }
        finally
        {
            buffer.DetachReader();
        }
        await gone.CancelAsync();
        await watch;
    }

    private static async Task WatchCloseAsync(HttpConnection conn, CancellationTokenSource gone)
    {
        var one = new byte[1];
        try
        {
            while (await conn.Reader.ReadAsync(one, gone.Token) > 0)
            {
                // a client that writes here anyway: ignored
            }
            await gone.CancelAsync();
        }
        catch (Exception)
        {
            // cancelled (the stream ended) or reset (the client went away)
            if (!gone.IsCancellationRequested) await gone.CancelAsync();
        }
    }

    private static byte[] Concat(byte[] a, byte[] b)
    {
        var all = new byte[a.Length + b.Length];
        a.CopyTo(all, 0);
        b.CopyTo(all, a.Length);
        return all;
    }

    private sealed class Flag
    {
        public volatile bool Value;
    }
}

/// <summary>Stdin of one Run/Attach connection, written to the process in order on a task of its own, with at most
/// <c>maxPending</c> bytes waiting: the connection's reader goes on to signals and resizes while the process has not
/// read its stdin. Once a write fails (the process exited) the rest is dropped.</summary>
public sealed class StdinForwarder : IAsyncDisposable
{
    private readonly System.Threading.Channels.Channel<byte[]?> _queue =
        System.Threading.Channels.Channel.CreateUnbounded<byte[]?>(new() { SingleReader = true, SingleWriter = true });
    private readonly object _gate = new();
    private readonly int _maxPending;
    private readonly CancellationToken _ct;
    private readonly Task _writer;
    private long _pending;
    private TaskCompletionSource? _room;
    private bool _closed;

    public StdinForwarder(IGardenProcess process, int maxPending, CancellationToken ct)
    {
        _maxPending = maxPending;
        _ct = ct;
        _writer = Task.Run(() => WriteAllAsync(process));
    }

    public async ValueTask WriteAsync(byte[] data)
    {
        if (data.Length == 0) return;
        while (true)
        {
            Task room;
            lock (_gate)
            {
                if (_closed) return;
                if (_pending == 0 || _pending + data.Length <= _maxPending)
                {
                    _pending += data.Length;
                    _queue.Writer.TryWrite(data);
                    return;
                }
                room = (_room ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }
            await room.WaitAsync(_ct);
        }
    }

    /// <summary>End of stdin, after what was written before it.</summary>
    public void Close()
    {
        lock (_gate)
        {
            if (_closed) return;
            _closed = true;
            _queue.Writer.TryWrite(null);
            _queue.Writer.TryComplete();
        }
    }

    private async Task WriteAllAsync(IGardenProcess process)
    {
        var broken = false;
        try
        {
            await foreach (var data in _queue.Reader.ReadAllAsync(_ct))
            {
                if (data is null)
                {
                    if (!broken) await process.CloseStdinAsync(_ct);
                    return;
                }
                try
                {
                    if (!broken) await process.WriteStdinAsync(data, _ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    broken = true;   // the process exited or closed its stdin: the rest has nowhere to go
                }
                lock (_gate)
                {
                    _pending -= data.Length;
                    _room?.TrySetResult();
                    _room = null;
                }
            }
        }
        catch (Exception)
        {
            // cancelled: the stream ended
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        lock (_gate)
        {
            _room?.TrySetCanceled();
            _room = null;
        }
        await _writer;
    }
}
