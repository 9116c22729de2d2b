using System.Collections.Immutable;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Protocol.Api;
using Grpc.Core;

namespace Garden.Host.Gateway;

/// <summary>garden.v1.Garden: protobuf in (<see cref="Translate"/>), actor message out, reply back. A thin translator: the
/// domain validates, and a domain error leaves as a <see cref="GardenException"/>, which the interceptor
/// (<see cref="UnexpectedErrors"/>) and the Akka.Remote adapter (ApiActor) map to a status in one place each
/// (<see cref="Errors"/>).</summary>
public sealed class GardenService(GatewayContext gw) : Protocol.Api.Garden.GardenBase
{
    private Task<T> Ask<T>(object message) => Akka.Actor.Futures.Ask<T>(gw.Host, message, gw.AskTimeout);

    public override async Task<PingResponse> Ping(PingRequest request, ServerCallContext context) =>
        new() { Version = (await Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance)).Version };

    public override async Task<CapacityResponse> Capacity(CapacityRequest request, ServerCallContext context)
    {
        var c = await Ask<HostProtocol.Capacity>(HostProtocol.GetCapacity.Instance);
        return new CapacityResponse { MemoryBytes = c.MemoryBytes, DiskBytes = c.DiskBytes, MaxContainers = c.MaxContainers };
    }

    public override async Task<CreateResponse> Create(CreateRequest request, ServerCallContext context) =>
        new() { Handle = (await Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Translate.ToDomain(request.Spec)))).Handle };

    public override async Task<DestroyResponse> Destroy(DestroyRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(request.Handle));
        return new DestroyResponse();
    }

    public override async Task<ListResponse> List(ListRequest request, ServerCallContext context)
    {
        var list = await Ask<HostProtocol.ContainerList>(new HostProtocol.ListContainers(request.Properties.ToImmutableDictionary()));
        var r = new ListResponse();
        r.Handles.AddRange(list.Handles);
        return r;
    }

    public override async Task<ContainerInfo> Info(InfoRequest request, ServerCallContext context) =>
        Translate.ToApi(await Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(request.Handle)));

    public override async Task<BulkInfoResponse> BulkInfo(BulkInfoRequest request, ServerCallContext context)
    {
        var r = new BulkInfoResponse();
        foreach (var (h, info, error) in await AskEach<ContainerProtocol.ContainerInfo>(request.Handles, h => new ContainerProtocol.GetInfo(h)))
            r.Infos[h] = error is { } e
                ? new BulkInfoEntry { Error = e.Detail, ErrorCode = e.StatusCode.ToString() }
                : new BulkInfoEntry { Info = Translate.ToApi(info!) };
        return r;
    }

    public override async Task<BulkMetricsResponse> BulkMetrics(BulkMetricsRequest request, ServerCallContext context)
    {
        var r = new BulkMetricsResponse();
        foreach (var (h, metrics, error) in await AskEach<ContainerProtocol.ContainerMetrics>(request.Handles, h => new ContainerProtocol.GetMetrics(h)))
            r.Metrics[h] = error is { } e
                ? new BulkMetricsEntry { Error = e.Detail, ErrorCode = e.StatusCode.ToString() }
                : new BulkMetricsEntry { Metrics = Translate.ToApi(metrics!) };
        return r;
    }

    /// <summary>A bulk request: each named container is asked at once; per handle its answer or its error as a status.</summary>
    private async Task<(string Handle, T? Answer, Status? Error)[]> AskEach<T>(IEnumerable<string> handles, Func<string, object> message) where T : class =>
        await Task.WhenAll(handles.Distinct().Select(async h =>
        {
            try
            {
                return (h, (T?)await Ask<T>(message(h)), (Status?)null);
            }
            catch (Exception e)
            {
                return (h, (T?)null, (Status?)Errors.ToStatus(e));
            }
        }));

    public override async Task<StopResponse> Stop(StopRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.StopContainer(request.Handle, request.Kill));
        return new StopResponse();
    }

    public override async Task<SignalResponse> Signal(SignalRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SignalProcess(request.Handle, request.ProcessId, request.Signal));
        return new SignalResponse();
    }

    public override async Task<PropertiesResponse> Properties(PropertiesRequest request, ServerCallContext context)
    {
        var r = new PropertiesResponse();
        r.Properties.Add((await Ask<ContainerProtocol.PropertiesResult>(new ContainerProtocol.GetProperties(request.Handle))).Properties);
        return r;
    }

    public override async Task<GetPropertyResponse> GetProperty(GetPropertyRequest request, ServerCallContext context) =>
        new() { Value = (await Ask<ContainerProtocol.PropertyValue>(new ContainerProtocol.GetProperty(request.Handle, request.Key))).Value };

    public override async Task<SetPropertyResponse> SetProperty(SetPropertyRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SetProperty(request.Handle, request.Key, request.Value));
        return new SetPropertyResponse();
    }

    public override async Task<RemovePropertyResponse> RemoveProperty(RemovePropertyRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.RemoveProperty(request.Handle, request.Key));
        return new RemovePropertyResponse();
    }

    public override async Task<LimitsResponse> Limit(LimitRequest request, ServerCallContext context)
    {
        var inForce = await Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits(request.Handle, Translate.ToDomain(request.Limits)));
        return new LimitsResponse { Limits = Translate.ToApi(inForce.Limits) };
    }

    public override async Task<LimitsResponse> CurrentLimits(CurrentLimitsRequest request, ServerCallContext context) =>
        new() { Limits = Translate.ToApi((await Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits(request.Handle))).Limits) };

    public override async Task<Protocol.Api.ContainerMetrics> Metrics(MetricsRequest request, ServerCallContext context) =>
        Translate.ToApi(await Ask<ContainerProtocol.ContainerMetrics>(new ContainerProtocol.GetMetrics(request.Handle)));

    public override async Task<SetTtyResponse> SetTty(SetTtyRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SetProcessTty(request.Handle, request.ProcessId, Translate.ToDomain(request.Size)));
        return new SetTtyResponse();
    }

    public override async Task<NetInResponse> NetIn(NetInRequest request, ServerCallContext context)
    {
        var m = (await Ask<ContainerProtocol.NetInInForce>(new ContainerProtocol.NetIn(request.Handle,
            Translate.Port(request.HostPort), Translate.Port(request.ContainerPort)))).Mapping;
        return new NetInResponse { HostPort = (uint)m.HostPort, ContainerPort = (uint)m.ContainerPort };
    }

    public override async Task<NetOutResponse> NetOut(NetOutRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.NetOut(request.Handle, request.Rule is null ? [] : [Translate.ToDomain(request.Rule, "rule 1")]));
        return new NetOutResponse();
    }

    public override async Task<NetOutResponse> BulkNetOut(BulkNetOutRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.NetOut(request.Handle, [.. request.Rules.Select((r, i) => Translate.ToDomain(r, $"rule {i + 1}"))]));
        return new NetOutResponse();
    }

    public override async Task<SetGraceTimeResponse> SetGraceTime(SetGraceTimeRequest request, ServerCallContext context)
    {
        await Ask<HostProtocol.Done>(new ContainerProtocol.SetGraceTime(request.Handle, Translate.Millis(request.GraceTimeMs)));
        return new SetGraceTimeResponse();
    }

    /// <summary>Subscribes before the first byte goes out (so nothing published after the call began is missed), then copies
    /// events to the client until it cancels.</summary>
    public override async Task Events(EventsRequest request, IServerStreamWriter<Protocol.Api.ContainerEvent> responseStream,
        ServerCallContext context)
    {
        var channel = System.Threading.Channels.Channel.CreateBounded<EventsProtocol.ContainerEvent>(
            new System.Threading.Channels.BoundedChannelOptions(4096)
            {
                FullMode = System.Threading.Channels.BoundedChannelFullMode.DropOldest, SingleReader = true,
            });
        // Ends when the client goes or when gardend stops (an open event stream must not hold up its shutdown).
        var stopping = context.GetHttpContext().RequestServices.GetService(typeof(Microsoft.Extensions.Hosting.IHostApplicationLifetime))
            is Microsoft.Extensions.Hosting.IHostApplicationLifetime lifetime ? lifetime.ApplicationStopping : CancellationToken.None;
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, stopping);
        var subscriber = Actors.Events.EventFeed.Subscribe(gw.System, channel.Writer, request.Handle.Length == 0 ? null : request.Handle);
        try
        {
            await context.WriteResponseHeadersAsync(new Metadata());
            await foreach (var e in channel.Reader.ReadAllAsync(ended.Token))
                await responseStream.WriteAsync(Translate.ToApi(e));
        }
        catch (OperationCanceledException) when (ended.IsCancellationRequested)
        {
            // the client went away: the normal end of an event stream
        }
        finally
        {
            gw.System.Stop(subscriber);
        }
    }

    /// <summary>A streaming call whose first message is missing.</summary>
    private static GardenException NoFirstMessage(string call, string what) =>
        new(ErrorKind.InvalidArgument, $"{call}: the first message must {what}");

    public override async Task Run(IAsyncStreamReader<RunRequest> requestStream, IServerStreamWriter<ProcessEvent> responseStream,
        ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken)) throw NoFirstMessage("run", "carry handle and spec");
        var first = requestStream.Current;
        var started = await Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(first.Handle, Translate.ToDomain(first.Spec), first.Detach));
        // The stream counts as an attached client (the container's grace timer pauses) until it is disposed, whatever happens.
        await using var stream = started.Stream;
        await responseStream.WriteAsync(new ProcessEvent { Started = new Protocol.Api.ProcessStarted { ProcessId = started.ProcessId } });
        if (stream is null) return;
        await Pump(first.Handle, stream, requestStream, r => r.Stdin, responseStream, context);
    }

    public override async Task Attach(IAsyncStreamReader<AttachRequest> requestStream, IServerStreamWriter<ProcessEvent> responseStream,
        ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken)) throw NoFirstMessage("attach", "name handle and process");
        var first = requestStream.Current;
        var attached = await Ask<ProcessProtocol.ProcessAttached>(new ContainerProtocol.AttachProcess(first.Handle, first.ProcessId, first.FromOffset));
        await using var stream = attached.Stream;
        await responseStream.WriteAsync(new ProcessEvent { Started = new Protocol.Api.ProcessStarted { ProcessId = first.ProcessId } });
        await Pump(first.Handle, stream, requestStream, r => r.Stdin, responseStream, context);
    }

    public override async Task<StreamInResponse> StreamIn(IAsyncStreamReader<StreamInRequest> requestStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct)) throw NoFirstMessage("stream-in", "carry handle and path");
        var first = requestStream.Current;
        await using var transfer = await StartTransfer(FileTransfers.StreamIn(first.Handle, first.Path, first.User), "stream-in", first.Path);
        using var _ = Abandoned(transfer, first.Handle);
        // the archive flows in while the tool's exit is awaited: a bad archive fails at once, not after the last byte
        var input = ForwardArchive(transfer, first.Data, requestStream, ct);
        while (await transfer.ReadAsync(ct) is not null)
        {
            // the tool writes nothing on stdout; its reason for failing is on stderr
        }
        await input;
        return new StreamInResponse();
    }

    public override async Task StreamOut(StreamOutRequest request, IServerStreamWriter<StreamOutChunk> responseStream, ServerCallContext context)
    {
        await using var transfer = await StartTransfer(FileTransfers.StreamOut(request.Handle, request.Path, request.User), "stream-out", request.Path);
        using var _ = Abandoned(transfer, request.Handle);
        try
        {
            await transfer.CompleteInputAsync(context.CancellationToken);
        }
        catch (Exception)
        {
            // the tool reads nothing and may be gone already: its exit, read below, is what matters
        }
        while (await transfer.ReadAsync(context.CancellationToken) is { } data)
            await responseStream.WriteAsync(new StreamOutChunk { Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(data) });
    }

    private async Task<FileTransfer> StartTransfer(ContainerProtocol.RunProcess run, string operation, string path)
    {
        var started = await Ask<ProcessProtocol.ProcessStarted>(run);
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

    private static async Task ForwardArchive(FileTransfer transfer, Google.Protobuf.ByteString firstData, IAsyncStreamReader<StreamInRequest> requests,
        CancellationToken ct)
    {
        try
        {
            if (firstData.Length > 0) await transfer.WriteAsync(firstData.Memory, ct);
            while (await requests.MoveNext(ct))
            {
                var data = requests.Current.Data;
                if (data.Length > 0) await transfer.WriteAsync(data.Memory, ct);
            }
            await transfer.CompleteInputAsync(ct);
        }
        catch (Exception)
        {
            // the client went away (the tool then sees a truncated archive) or the tool exited: its exit says what happened
        }
    }

    /// <summary>Client stdin → process; process output and exit → client. Ends at the exit or when the client goes.</summary>
    private static async Task Pump<TReq>(string handle, IProcessStream stream, IAsyncStreamReader<TReq> requests, Func<TReq, StdinChunk?> stdinOf,
        IServerStreamWriter<ProcessEvent> responses, ServerCallContext context)
    {
        await using var _ = stream;
        var ct = context.CancellationToken;
        // The stdin reader must have stopped before this handler returns: Kestrel reuses the HTTP/2 stream object for the next
        // call, and a read still pending on it fails that call's first read ("Reading is already in progress").
        using var stdinStop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var stdin = ForwardStdin(stream, requests, stdinOf, stdinStop.Token);
        try
        {
            await PumpOutput(handle, stream, responses, ct);
        }
        finally
        {
            stdinStop.Cancel();
            await stdin;
        }
    }

    private static async Task PumpOutput(string handle, IProcessStream stream, IServerStreamWriter<ProcessEvent> responses, CancellationToken ct)
    {
        while (true)
        {
            Protocol.Agent.AgentEvent? evt;
            try
            {
                evt = await stream.ReadAsync(ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // e.g. attaching just as the process exits and the agent drops the connection: say so, not "Unknown"
                throw e is IOException or System.Net.Sockets.SocketException or Garden.Linux.Agent.AgentUnavailableException
                    ? new GardenException(ErrorKind.Unavailable,
                        $"process {stream.ProcessId}: the connection to the container's agent broke ({e.Message}); attach again", e)
                    : GardenErrors.From(e, handle, "process", stream.ProcessId);
            }
            if (evt is null)
                throw new GardenException(ErrorKind.Unavailable,
                    $"process {stream.ProcessId}: the container's agent closed the stream before the process exited");
            switch (evt.KindCase)
            {
                case Protocol.Agent.AgentEvent.KindOneofCase.Output:
                    await responses.WriteAsync(new ProcessEvent
                    {
                        Output = new Output
                        {
                            Stream = evt.Output.Stream == Protocol.Agent.StreamKind.Stderr ? Output.Types.Stream.Stderr : Output.Types.Stream.Stdout,
                            Offset = evt.Output.Offset,
                            Data = evt.Output.Data,
                        },
                    });
                    break;
                case Protocol.Agent.AgentEvent.KindOneofCase.Missed:
                    await responses.WriteAsync(new ProcessEvent { Missed = new Protocol.Api.OutputMissed { From = evt.Missed.From, To = evt.Missed.To } });
                    break;
                case Protocol.Agent.AgentEvent.KindOneofCase.Exited:
                    await responses.WriteAsync(new ProcessEvent
                    {
                        Exited = new ProcessExited { ExitCode = evt.Exited.ExitCode, Signal = evt.Exited.Signal },
                    });
                    return;
                case Protocol.Agent.AgentEvent.KindOneofCase.Error:
                    throw new GardenException(ErrorKind.Internal, $"process {stream.ProcessId}: {evt.Error.Message}");
            }
        }
    }

    private static async Task ForwardStdin<TReq>(IProcessStream stream, IAsyncStreamReader<TReq> requests, Func<TReq, StdinChunk?> stdinOf,
        CancellationToken ct)
    {
        try
        {
            while (await requests.MoveNext(ct))
            {
                var chunk = stdinOf(requests.Current);
                if (chunk is null) continue;
                if (chunk.Data.Length > 0) await stream.WriteStdinAsync(chunk.Data.Memory, ct);
                if (chunk.Close) { await stream.CloseStdinAsync(ct); return; }
            }
            await stream.CloseStdinAsync(ct);
        }
        catch (Exception)
        {
            // The client went away or the process exited: stdin no longer matters.
        }
    }
}
