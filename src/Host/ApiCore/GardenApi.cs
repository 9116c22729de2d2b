using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Process;

using Garden.Protocol.Api;

namespace Garden.Host.ApiCore;

/// <summary>The API core (<see cref="IGardenApi"/>): protobuf in (<see cref="Translate"/>), actor message out, reply
/// back. The domain validates; a domain error leaves as the <see cref="GardenException"/> the actors failed with. The
/// protobuf types are written <c>Protocol.Api.X</c> where they share a name with a domain record.</summary>
/// <param name="stopping">Cancelled when gardend stops: open event streams end then (they must not hold up its shutdown).</param>
public sealed class GardenApi(GatewayContext gw, CancellationToken stopping = default) : IGardenApi
{
    private Task<T> Ask<T>(object message, CancellationToken ct) => Akka.Actor.Futures.Ask<T>(gw.Host, message, gw.AskTimeout, ct);

    public async Task<PingResponse> PingAsync(PingRequest request, CancellationToken ct = default) =>
        new() { Version = (await Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance, ct)).Version, Build = GardendVersion.Text };

    public async Task<CapacityResponse> CapacityAsync(CapacityRequest request, CancellationToken ct = default)
    {
        var c = await Ask<HostProtocol.Capacity>(HostProtocol.GetCapacity.Instance, ct);
        return new CapacityResponse { MemoryBytes = c.MemoryBytes, DiskBytes = c.DiskBytes, MaxContainers = c.MaxContainers };
    }

    public async Task<CreateResponse> CreateAsync(CreateRequest request, CancellationToken ct = default) =>
        new() { Handle = (await Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Translate.ToDomain(request.Spec)), ct)).Handle };

    public async Task<DestroyResponse> DestroyAsync(DestroyRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(request.Handle), ct);
        return new DestroyResponse();
    }

    public async Task<ListResponse> ListAsync(ListRequest request, CancellationToken ct = default)
    {
        var list = await Ask<HostProtocol.ContainerList>(new HostProtocol.ListContainers(request.Properties.ToImmutableDictionary()), ct);
        var r = new ListResponse();
        r.Handles.AddRange(list.Handles);
        return r;
    }

    public async Task<Protocol.Api.ContainerInfo> InfoAsync(InfoRequest request, CancellationToken ct = default) =>
        Translate.ToApi(await Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(request.Handle), ct));

    public async Task<BulkInfoResponse> BulkInfoAsync(BulkInfoRequest request, CancellationToken ct = default)
    {
        var r = new BulkInfoResponse();
        foreach (var (h, info, error) in await AskEach<ContainerProtocol.ContainerInfo>(request.Handles, h => new ContainerProtocol.GetInfo(h), ct))
            r.Infos[h] = error is { } e
                ? new BulkInfoEntry { Error = e.Detail, ErrorCode = e.StatusCode.ToString() }
                : new BulkInfoEntry { Info = Translate.ToApi(info!) };
        return r;
    }

    public async Task<BulkMetricsResponse> BulkMetricsAsync(BulkMetricsRequest request, CancellationToken ct = default)
    {
        var r = new BulkMetricsResponse();
        foreach (var (h, metrics, error) in await AskEach<ContainerProtocol.ContainerMetrics>(request.Handles, h => new ContainerProtocol.GetMetrics(h), ct))
            r.Metrics[h] = error is { } e
                ? new BulkMetricsEntry { Error = e.Detail, ErrorCode = e.StatusCode.ToString() }
                : new BulkMetricsEntry { Metrics = Translate.ToApi(metrics!) };
        return r;
    }

    /// <summary>A bulk request: each named container is asked at once; per handle its answer or its error as a status (the
    /// protocol's bulk entries carry the status code name, <see cref="Gateway.Errors"/>).</summary>
    private async Task<(string Handle, T? Answer, Grpc.Core.Status? Error)[]> AskEach<T>(IEnumerable<string> handles, Func<string, object> message,
        CancellationToken ct) where T : class =>
        await Task.WhenAll(handles.Distinct().Select(async h =>
        {
            try
            {
                return (h, (T?)await Ask<T>(message(h), ct), (Grpc.Core.Status?)null);
            }
            catch (Exception e)
            {
                return (h, (T?)null, (Grpc.Core.Status?)Gateway.Errors.ToStatus(e));
            }
        }));

    public async Task<StopResponse> StopAsync(StopRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.StopContainer(request.Handle, request.Kill), ct);
        return new StopResponse();
    }

    public async Task<SignalResponse> SignalAsync(SignalRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SignalProcess(request.Handle, request.ProcessId, request.Signal), ct);
        return new SignalResponse();
    }

    public async Task<PropertiesResponse> PropertiesAsync(PropertiesRequest request, CancellationToken ct = default)
    {
        var r = new PropertiesResponse();
        r.Properties.Add((await Ask<ContainerProtocol.PropertiesResult>(new ContainerProtocol.GetProperties(request.Handle), ct)).Properties);
        return r;
    }

    public async Task<GetPropertyResponse> GetPropertyAsync(GetPropertyRequest request, CancellationToken ct = default) =>
        new() { Value = (await Ask<ContainerProtocol.PropertyValue>(new ContainerProtocol.GetProperty(request.Handle, request.Key), ct)).Value };

    public async Task<SetPropertyResponse> SetPropertyAsync(SetPropertyRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SetProperty(request.Handle, request.Key, request.Value), ct);
        return new SetPropertyResponse();
    }

    public async Task<RemovePropertyResponse> RemovePropertyAsync(RemovePropertyRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.RemoveProperty(request.Handle, request.Key), ct);
        return new RemovePropertyResponse();
    }

    public async Task<LimitsResponse> LimitAsync(LimitRequest request, CancellationToken ct = default)
    {
        var inForce = await Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits(request.Handle, Translate.ToDomain(request.Limits)), ct);
        return new LimitsResponse { Limits = Translate.ToApi(inForce.Limits) };
    }

    public async Task<LimitsResponse> CurrentLimitsAsync(CurrentLimitsRequest request, CancellationToken ct = default) =>
        new() { Limits = Translate.ToApi((await Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits(request.Handle), ct)).Limits) };

    public async Task<Protocol.Api.ContainerMetrics> MetricsAsync(MetricsRequest request, CancellationToken ct = default) =>
        Translate.ToApi(await Ask<ContainerProtocol.ContainerMetrics>(new ContainerProtocol.GetMetrics(request.Handle), ct));

    public async Task<SetTtyResponse> SetTtyAsync(SetTtyRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SetProcessTty(request.Handle, request.ProcessId, Translate.ToDomain(request.Size)), ct);
        return new SetTtyResponse();
    }

    public async Task<NetInResponse> NetInAsync(NetInRequest request, CancellationToken ct = default)
    {
        var m = (await Ask<ContainerProtocol.NetInInForce>(new ContainerProtocol.NetIn(request.Handle,
            Translate.Port(request.HostPort), Translate.Port(request.ContainerPort)), ct)).Mapping;
        return new NetInResponse { HostPort = (uint)m.HostPort, ContainerPort = (uint)m.ContainerPort };
    }

    public async Task<NetOutResponse> NetOutAsync(NetOutRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.NetOut(request.Handle, request.Rule is null ? [] : [Translate.ToDomain(request.Rule, "rule 1")]), ct);
        return new NetOutResponse();
    }

    public async Task<NetOutResponse> BulkNetOutAsync(BulkNetOutRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.NetOut(request.Handle, [.. request.Rules.Select((r, i) => Translate.ToDomain(r, $"rule {i + 1}"))]), ct);
        return new NetOutResponse();
    }

    public async Task<SetGraceTimeResponse> SetGraceTimeAsync(SetGraceTimeRequest request, CancellationToken ct = default)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SetGraceTime(request.Handle, Translate.Millis(request.GraceTimeMs)), ct);
        return new SetGraceTimeResponse();
    }

    // ---- events ----

    /// <summary>Subscribes now (not at the first MoveNextAsync), so that a caller who returned from this call misses
    /// nothing published after it; the subscription ends with the enumeration, or with <paramref name="ct"/> or
    /// gardend's stop if it is never enumerated.</summary>
    public IAsyncEnumerable<Protocol.Api.ContainerEvent> Events(EventsRequest request, CancellationToken ct = default)
    {
        var channel = Channel.CreateBounded<EventsProtocol.ContainerEvent>(new BoundedChannelOptions(4096)
        {
            FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true,
        });
        var ended = CancellationTokenSource.CreateLinkedTokenSource(ct, stopping);
        var subscriber = Actors.Events.EventFeed.Subscribe(gw.System, channel.Writer, request.Handle.Length == 0 ? null : request.Handle);
        var unsubscribe = ended.Token.Register(() => gw.System.Stop(subscriber));
        return ReadEvents(channel.Reader, ended, unsubscribe, subscriber);
    }

    private async IAsyncEnumerable<Protocol.Api.ContainerEvent> ReadEvents(ChannelReader<EventsProtocol.ContainerEvent> reader,
        CancellationTokenSource ended, CancellationTokenRegistration unsubscribe, Akka.Actor.IActorRef subscriber,
        [EnumeratorCancellation] CancellationToken enumeration = default)
    {
        using var _ = ended;
        using var both = CancellationTokenSource.CreateLinkedTokenSource(ended.Token, enumeration);
        try
        {
            while (true)
            {
                EventsProtocol.ContainerEvent e;
                try
                {
                    if (!await reader.WaitToReadAsync(both.Token)) yield break;
                    if (!reader.TryRead(out e!)) continue;
                }
                catch (OperationCanceledException)
                {
                    yield break; // the client went away or gardend stops: the normal end of an event stream
                }
                yield return Translate.ToApi(e);
            }
        }
        finally
        {
            await unsubscribe.DisposeAsync();
            gw.System.Stop(subscriber);
        }
    }

    // ---- processes ----

    public async Task<IApiProcess> RunAsync(RunRequest request, CancellationToken ct = default)
    {
        // the answer continues this call on the thread that read the agent's Spawned (DirectAsk), not on another one
        var started = await DirectAsk.Ask<ProcessProtocol.ProcessStarted>(gw.System, gw.Host,
            new ContainerProtocol.RunProcess(request.Handle, Translate.ToDomain(request.Spec), request.Detach), gw.AskTimeout, ct);
        return new ApiProcess(request.Handle, started.ProcessId, started.Stream);
    }

    public async Task<IApiProcess> AttachAsync(AttachRequest request, CancellationToken ct = default)
    {
        var attached = await Ask<ProcessProtocol.ProcessAttached>(new ContainerProtocol.AttachProcess(request.Handle, request.ProcessId, request.FromOffset), ct);
        return new ApiProcess(request.Handle, request.ProcessId, attached.Stream);
    }

    /// <summary>A process stream seen as protobuf events; null stream = a detached run (no events).</summary>
    private sealed class ApiProcess(string handle, string processId, IProcessStream? stream) : IApiProcess
    {
        public string ProcessId => processId;

        public async IAsyncEnumerable<ProcessEvent> Events([EnumeratorCancellation] CancellationToken ct = default)
        {
            if (stream is null) yield break;
            while (true)
            {
                Protocol.Agent.AgentEvent? evt;
                try
                {
                    evt = await stream.ReadAsync(ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // the one map of what the effects layer throws (an agent that went away mid-stream, ...)
                    throw GardenErrors.From(e, handle, "reading the process's output", processId);
                }
                if (evt is null)
                    throw new GardenException(ErrorKind.Unavailable,
                        $"process {processId}: the container's agent closed the stream before the process exited");
                switch (evt.KindCase)
                {
                    case Protocol.Agent.AgentEvent.KindOneofCase.Output:
                        yield return new ProcessEvent
                        {
                            Output = new Output
                            {
                                Stream = evt.Output.Stream == Protocol.Agent.StreamKind.Stderr ? Output.Types.Stream.Stderr : Output.Types.Stream.Stdout,
                                Offset = evt.Output.Offset,
                                Data = evt.Output.Data,
                            },
                        };
                        break;
                    case Protocol.Agent.AgentEvent.KindOneofCase.Missed:
                        yield return new ProcessEvent { Missed = new OutputMissed { From = evt.Missed.From, To = evt.Missed.To } };
                        break;
                    case Protocol.Agent.AgentEvent.KindOneofCase.Exited:
                        yield return new ProcessEvent { Exited = new ProcessExited { ExitCode = evt.Exited.ExitCode, Signal = evt.Exited.Signal } };
                        yield break;
                    case Protocol.Agent.AgentEvent.KindOneofCase.Error:
                        throw new GardenException(ErrorKind.Internal, $"process {processId}: {evt.Error.Message}");
                }
            }
        }

        public async Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default)
        {
            if (stream is null) throw new GardenException(ErrorKind.FailedPrecondition, $"process {processId}: detached, no stdin");
            if (data.Length > 0) await stream.WriteStdinAsync(data, ct);
        }

        public async Task CloseStdinAsync(CancellationToken ct = default)
        {
            if (stream is not null) await stream.CloseStdinAsync(ct);
        }

        public ValueTask DisposeAsync() => stream?.DisposeAsync() ?? ValueTask.CompletedTask;
    }

    /// <summary>What every transport does with a Run or Attach: stdin chunks from the client go to the process (until a
    /// chunk closes it, the client's input ends, or the output ends) while the events go to the client; returns after the
    /// exit was written, or throws what broke the stream. The stdin reader has stopped when this returns (gRPC reuses
    /// the request stream object for the next call: a read still pending would fail that call's first read).</summary>
    public static async Task PumpAsync(IApiProcess process, IAsyncEnumerable<StdinChunk?> stdin, Func<ProcessEvent, Task> write,
        CancellationToken ct)
    {
        using var stdinStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var forwarding = ForwardStdin(process, stdin, stdinStop.Token);
        try
        {
            await foreach (var e in process.Events(ct)) await write(e);
        }
        finally
        {
            stdinStop.Cancel();
            await forwarding;
        }
    }

    private static async Task ForwardStdin(IApiProcess process, IAsyncEnumerable<StdinChunk?> stdin, CancellationToken ct)
    {
        try
        {
            await foreach (var chunk in stdin.WithCancellation(ct))
            {
                if (chunk is null) continue;
                if (chunk.Data.Length > 0) await process.WriteStdinAsync(chunk.Data.Memory, ct);
                if (chunk.Close) { await process.CloseStdinAsync(ct); return; }
            }
            await process.CloseStdinAsync(ct);
        }
        catch (Exception)
        {
            // The client went away or the process exited: stdin no longer matters.
        }
    }

    // ---- files ----

    public async Task<StreamInResponse> StreamInAsync(StreamInRequest request, IAsyncEnumerable<ReadOnlyMemory<byte>> archive,
        CancellationToken ct = default)
    {
        await using var transfer = await StartTransfer(FileTransfers.StreamIn(request.Handle, request.Path, request.User), "stream-in", request.Path, ct);
        using var _ = Abandoned(transfer, request.Handle);
        // the archive flows in while the tool's exit is awaited: a bad archive fails at once, not after the last byte
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var input = ForwardArchive(transfer, request.Data, archive, stop.Token);
        try
        {
            while (await transfer.ReadAsync(ct) is not null)
            {
                // the tool writes nothing on stdout; its reason for failing is on stderr
            }
        }
        catch
        {
            // nobody reads the rest of a refused archive; and the client's stream is read by nobody once this call ended
            // (gRPC reuses a call's request stream for the next call on the connection, Garden HTTP the connection: a
            // read left pending there takes the next request's bytes)
            stop.Cancel();
            await input;
            throw;
        }
        // the tool read the archive's end: what the client still sends (the end's padding) is read to its end
        await input;
        return new StreamInResponse();
    }

    public async IAsyncEnumerable<StreamOutChunk> StreamOut(StreamOutRequest request, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var transfer = await StartTransfer(FileTransfers.StreamOut(request.Handle, request.Path, request.User), "stream-out", request.Path, ct);
        using var _ = Abandoned(transfer, request.Handle);
        try
        {
            await transfer.CompleteInputAsync(ct);
        }
        catch (Exception)
        {
            // the tool reads nothing and may be gone already: its exit, read below, is what matters
        }
        while (await transfer.ReadAsync(ct) is { } data)
            yield return new StreamOutChunk { Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(data) };
    }

    private async Task<FileTransfer> StartTransfer(ContainerProtocol.RunProcess run, string operation, string path, CancellationToken ct)
    {
        ProcessProtocol.ProcessStarted started;
        try
        {
            started = await Ask<ProcessProtocol.ProcessStarted>(run, ct);
        }
        catch (GardenException e) when (e.Kind == ErrorKind.InvalidArgument)
        {
            // the tool could not start (an unknown user): in Garden's words, which its clients and suite look for
            throw new GardenException(e.Kind, $"error {(operation == "stream-in" ? "streaming in" : "streaming out")}: {e.Message}", e);
        }
        return new FileTransfer(started.Stream!, run.Handle, operation, path);
    }

    /// <summary>When the call ends before the tool exited (the client went away, a failure), the tool is killed: nobody
    /// will read the rest of its archive or send the rest of theirs.</summary>
    private IDisposable Abandoned(FileTransfer transfer, string handle) => new Finally(() =>
    {
        if (!transfer.Finished) gw.Host.Tell(new ContainerProtocol.SignalProcess(handle, transfer.ProcessId, 9), Akka.Actor.ActorRefs.NoSender);
    });

    private sealed class Finally(Action action) : IDisposable
    {
        public void Dispose() => action();
    }

    private static async Task ForwardArchive(FileTransfer transfer, Google.Protobuf.ByteString firstData, IAsyncEnumerable<ReadOnlyMemory<byte>> archive,
        CancellationToken ct)
    {
        try
        {
            if (firstData.Length > 0) await transfer.WriteAsync(firstData.Memory, ct);
            await foreach (var data in archive.WithCancellation(ct))
                if (data.Length > 0) await transfer.WriteAsync(data, ct);
            await transfer.CompleteInputAsync(ct);
        }
        catch (Exception)
        {
            // the client went away (the tool then sees a truncated archive) or the tool exited: its exit says what happened
        }
    }

    /// <summary>A stream read in pieces, for <see cref="StreamInAsync"/> from a transport that has the archive as a Stream.</summary>
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks(Stream stream, [EnumeratorCancellation] CancellationToken ct = default)
    {
        while (true)
        {
            var buffer = new byte[64 * 1024]; // a new one each time: the agent connection may still hold the last one
            var n = await stream.ReadAsync(buffer, ct);
            if (n == 0) yield break;
            yield return buffer.AsMemory(0, n);
        }
    }
}
