using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Actors.Process;
using AgentEvent = Garden.Protocol.Agent.AgentEvent;
using StreamKind = Garden.Protocol.Agent.StreamKind;
using Garden.Protocol.Api;
using Grpc.Core;
using ContainerInfo = Garden.Protocol.Api.ContainerInfo;
using Ping = Garden.Actors.Host.Ping;
using BulkInfo = Garden.Actors.Host.BulkInfo;
using GetProperty = Garden.Actors.Container.GetProperty;
using SetProperty = Garden.Actors.Container.SetProperty;
using RemoveProperty = Garden.Actors.Container.RemoveProperty;

namespace Garden.Host.Gateway;

/// <summary>garden.v1.Garden: protobuf in, actor message out, reply back. A thin translator.</summary>
public sealed class GardenService(GatewayContext gw) : Protocol.Api.Garden.GardenBase
{
    private async Task<T> Ask<T>(object message)
    {
        try
        {
            return await gw.Host.Ask<T>(message, gw.AskTimeout).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            throw Errors.ToRpc(e);
        }
    }

    public override async Task<PingResponse> Ping(PingRequest request, ServerCallContext context) =>
        new() { Version = (await Ask<Pong>(Actors.Host.Ping.Instance)).Version };

    public override async Task<CapacityResponse> Capacity(CapacityRequest request, ServerCallContext context)
    {
        var c = await Ask<Capacity>(GetCapacity.Instance);
        return new CapacityResponse { MemoryBytes = c.MemoryBytes, DiskBytes = c.DiskBytes, MaxContainers = c.MaxContainers };
    }

    public override async Task<CreateResponse> Create(CreateRequest request, ServerCallContext context)
    {
        Actors.ContainerSpec spec;
        try
        {
            spec = Translate.ToDomain(request.Spec);
        }
        catch (Exception e)
        {
            throw Errors.ToRpc(e);
        }
        return new CreateResponse { Handle = (await Ask<ContainerCreated>(new CreateContainer(spec))).Handle };
    }

    public override async Task<DestroyResponse> Destroy(DestroyRequest request, ServerCallContext context)
    {
        await Ask<ContainerDestroyed>(new DestroyContainer(request.Handle));
        return new DestroyResponse();
    }

    public override async Task<ListResponse> List(ListRequest request, ServerCallContext context)
    {
        var list = await Ask<ContainerList>(new ListContainers(request.Properties.ToImmutableDictionary()));
        var r = new ListResponse();
        r.Handles.AddRange(list.Handles);
        return r;
    }

    public override async Task<ContainerInfo> Info(InfoRequest request, ServerCallContext context) =>
        Translate.ToApi(await Ask<Actors.Container.ContainerInfo>(new GetInfo(request.Handle)));

    public override async Task<BulkInfoResponse> BulkInfo(BulkInfoRequest request, ServerCallContext context)
    {
        var result = await Ask<BulkInfoResult>(new Actors.Host.BulkInfo([.. request.Handles]));
        var r = new BulkInfoResponse();
        foreach (var (h, info) in result.Infos) r.Infos[h] = new BulkInfoEntry { Info = Translate.ToApi(info) };
        foreach (var (h, e) in result.Errors) r.Infos[h] = new BulkInfoEntry { Error = e.Message, ErrorCode = Errors.ToCodeName(e.Kind) };
        return r;
    }

    public override async Task<StopResponse> Stop(StopRequest request, ServerCallContext context)
    {
        await Ask<Done>(new StopContainer(request.Handle, request.Kill));
        return new StopResponse();
    }

    public override async Task<SignalResponse> Signal(SignalRequest request, ServerCallContext context)
    {
        if (request.Signal is <= 0 or > 64)
            throw Errors.ToRpc(Actors.GardenException.Invalid("signal", $"{request.Signal} is not a signal number (1-64)"));
        await Ask<Done>(new SignalProcess(request.Handle, request.ProcessId, request.Signal));
        return new SignalResponse();
    }

    public override async Task<PropertiesResponse> Properties(PropertiesRequest request, ServerCallContext context)
    {
        var r = new PropertiesResponse();
        r.Properties.Add((await Ask<PropertiesResult>(new GetProperties(request.Handle))).Properties);
        return r;
    }

    public override async Task<GetPropertyResponse> GetProperty(GetPropertyRequest request, ServerCallContext context) =>
        new() { Value = (await Ask<PropertyValue>(new Actors.Container.GetProperty(request.Handle, request.Key))).Value };

    public override async Task<SetPropertyResponse> SetProperty(SetPropertyRequest request, ServerCallContext context)
    {
        await Ask<Done>(new Actors.Container.SetProperty(request.Handle, request.Key, request.Value));
        return new SetPropertyResponse();
    }

    public override async Task<RemovePropertyResponse> RemoveProperty(RemovePropertyRequest request, ServerCallContext context)
    {
        await Ask<Done>(new Actors.Container.RemoveProperty(request.Handle, request.Key));
        return new RemovePropertyResponse();
    }

    public override async Task<LimitsResponse> Limit(LimitRequest request, ServerCallContext context)
    {
        var change = Translate.ToDomain(request.Limits);
        var inForce = await Ask<LimitsInForce>(new SetLimits(request.Handle, change));
        return new LimitsResponse { Limits = Translate.ToApi(inForce.Limits) };
    }

    public override async Task<LimitsResponse> CurrentLimits(CurrentLimitsRequest request, ServerCallContext context) =>
        new() { Limits = Translate.ToApi((await Ask<LimitsInForce>(new GetLimits(request.Handle))).Limits) };

    public override async Task<Protocol.Api.ContainerMetrics> Metrics(MetricsRequest request, ServerCallContext context) =>
        Translate.ToApi(await Ask<Actors.Container.ContainerMetrics>(new GetMetrics(request.Handle)));

    public override async Task<SetTtyResponse> SetTty(SetTtyRequest request, ServerCallContext context)
    {
        if (request.Size is null) throw Errors.ToRpc(Actors.GardenException.Invalid("size", "missing"));
        await Ask<Done>(new SetProcessTty(request.Handle, request.ProcessId, new Actors.TtySize(request.Size.Rows, request.Size.Cols)));
        return new SetTtyResponse();
    }

    public override async Task<NetInResponse> NetIn(NetInRequest request, ServerCallContext context)
    {
        static int Port(uint p) => p > int.MaxValue ? int.MaxValue : (int)p;
        var m = (await Ask<NetInInForce>(new Actors.Container.NetIn(request.Handle, Port(request.HostPort), Port(request.ContainerPort)))).Mapping;
        return new NetInResponse { HostPort = (uint)m.HostPort, ContainerPort = (uint)m.ContainerPort };
    }

    public override Task<NetOutResponse> NetOut(NetOutRequest request, ServerCallContext context) =>
        NetOutCore(request.Handle, request.Rule is null ? [] : [request.Rule]);

    public override Task<NetOutResponse> BulkNetOut(BulkNetOutRequest request, ServerCallContext context) =>
        NetOutCore(request.Handle, request.Rules);

    private async Task<NetOutResponse> NetOutCore(string handle, IEnumerable<Protocol.Api.NetOutRule> rules)
    {
        ImmutableArray<Linux.Network.NetOutRule> domain;
        try
        {
            domain = [.. rules.Select((r, i) => Translate.ToDomain(r, $"rule {i + 1}"))];
        }
        catch (Exception e)
        {
            throw Errors.ToRpc(e);
        }
        await Ask<Done>(new Actors.Container.NetOut(handle, domain));
        return new NetOutResponse();
    }

    public override async Task<BulkMetricsResponse> BulkMetrics(BulkMetricsRequest request, ServerCallContext context)
    {
        var result = await Ask<BulkMetricsResult>(new Actors.Host.BulkMetrics([.. request.Handles]));
        var r = new BulkMetricsResponse();
        foreach (var (h, m) in result.Metrics) r.Metrics[h] = new BulkMetricsEntry { Metrics = Translate.ToApi(m) };
        foreach (var (h, e) in result.Errors) r.Metrics[h] = new BulkMetricsEntry { Error = e.Message, ErrorCode = Errors.ToCodeName(e.Kind) };
        return r;
    }

    public override async Task<SetGraceTimeResponse> SetGraceTime(SetGraceTimeRequest request, ServerCallContext context)
    {
        await Ask<Done>(new Actors.Container.SetGraceTime(request.Handle, Translate.Millis(request.GraceTimeMs)));
        return new SetGraceTimeResponse();
    }

    /// <summary>Subscribes before the first byte goes out (so nothing published after the call began is missed), then copies
    /// events to the client until it cancels.</summary>
    public override async Task Events(EventsRequest request, IServerStreamWriter<Protocol.Api.ContainerEvent> responseStream,
        ServerCallContext context)
    {
        var channel = System.Threading.Channels.Channel.CreateBounded<Actors.Events.ContainerEvent>(
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

    public override async Task Run(IAsyncStreamReader<RunRequest> requestStream, IServerStreamWriter<ProcessEvent> responseStream,
        ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken))
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, "run: the first message must carry handle and spec"));
        var first = requestStream.Current;
        Actors.ProcessSpec spec;
        try { spec = Translate.ToDomain(first.Spec); }
        catch (Exception e) { throw Errors.ToRpc(e); }
        var started = await Ask<Actors.Process.ProcessStarted>(new RunProcess(first.Handle, spec, first.Detach));
        // The stream counts as an attached client (the container's grace timer pauses) until it is disposed, whatever happens.
        await using var stream = started.Stream;
        await responseStream.WriteAsync(new ProcessEvent { Started = new Protocol.Api.ProcessStarted { ProcessId = started.ProcessId } });
        if (stream is null) return;
        await Pump(first.Handle, stream, requestStream, r => r.Stdin, responseStream, context);
    }

    public override async Task Attach(IAsyncStreamReader<AttachRequest> requestStream, IServerStreamWriter<ProcessEvent> responseStream,
        ServerCallContext context)
    {
        if (!await requestStream.MoveNext(context.CancellationToken))
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, "attach: the first message must name handle and process"));
        var first = requestStream.Current;
        var attached = await Ask<ProcessAttached>(new AttachProcess(first.Handle, first.ProcessId, first.FromOffset));
        await using var stream = attached.Stream;
        await responseStream.WriteAsync(new ProcessEvent { Started = new Protocol.Api.ProcessStarted { ProcessId = first.ProcessId } });
        await Pump(first.Handle, stream, requestStream, r => r.Stdin, responseStream, context);
    }

    public override async Task<StreamInResponse> StreamIn(IAsyncStreamReader<StreamInRequest> requestStream, ServerCallContext context)
    {
        var ct = context.CancellationToken;
        if (!await requestStream.MoveNext(ct))
            throw new RpcException(new Grpc.Core.Status(StatusCode.InvalidArgument, "stream-in: the first message must carry handle and path"));
        var first = requestStream.Current;
        await using var transfer = await StartTransfer(() => FileTransfers.StreamIn(first.Handle, first.Path, first.User), "stream-in", first.Path);
        using var _ = Abandoned(transfer, first.Handle);
        // the archive flows in while the tool's exit is awaited: a bad archive fails at once, not after the last byte
        var input = ForwardArchive(transfer, first.Data, requestStream, ct);
        try
        {
            while (await transfer.ReadAsync(ct) is not null)
            {
                // the tool writes nothing on stdout; its reason for failing is on stderr
            }
        }
        catch (Exception e)
        {
            throw Errors.ToRpc(e);
        }
        await input;
        return new StreamInResponse();
    }

    public override async Task StreamOut(StreamOutRequest request, IServerStreamWriter<StreamOutChunk> responseStream, ServerCallContext context)
    {
        await using var transfer = await StartTransfer(() => FileTransfers.StreamOut(request.Handle, request.Path, request.User), "stream-out", request.Path);
        using var _ = Abandoned(transfer, request.Handle);
        try
        {
            await transfer.CompleteInputAsync(context.CancellationToken);
        }
        catch (Exception)
        {
            // the tool reads nothing and may be gone already: its exit, read below, is what matters
        }
        try
        {
            while (await transfer.ReadAsync(context.CancellationToken) is { } data)
                await responseStream.WriteAsync(new StreamOutChunk { Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(data) });
        }
        catch (Exception e)
        {
            throw Errors.ToRpc(e);
        }
    }

    private async Task<FileTransfer> StartTransfer(Func<RunProcess> run, string operation, string path)
    {
        RunProcess message;
        try { message = run(); }
        catch (Exception e) { throw Errors.ToRpc(e); }
        var started = await Ask<Actors.Process.ProcessStarted>(message);
        return new FileTransfer(started.Stream!, message.Handle, operation, path);
    }

    /// <summary>When the call ends before the tool exited (the client went away, a failure), the tool is killed: nobody
    /// will read the rest of its archive or send the rest of theirs.</summary>
    private IDisposable Abandoned(FileTransfer transfer, string handle) => new Finally(() =>
    {
        if (!transfer.Finished) gw.Host.Tell(new SignalProcess(handle, transfer.ProcessId, 9));
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
            AgentEvent? evt;
            try
            {
                evt = await stream.ReadAsync(ct);
            }
            catch (Exception e) when (e is not RpcException and not OperationCanceledException)
            {
                // e.g. attaching just as the process exits and the agent drops the connection: say so, not "Unknown"
                throw e is IOException or System.Net.Sockets.SocketException or Garden.Linux.Agent.AgentUnavailableException
                    ? new RpcException(new Grpc.Core.Status(StatusCode.Unavailable,
                        $"process {stream.ProcessId}: the connection to the container's agent broke ({e.Message}); attach again"))
                    : Errors.ToRpc(Actors.Process.AgentErrors.ToGarden(e, handle, stream.ProcessId));
            }
            if (evt is null)
                throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable,
                    $"process {stream.ProcessId}: the container's agent closed the stream before the process exited"));
            switch (evt.KindCase)
            {
                case AgentEvent.KindOneofCase.Output:
                    await responses.WriteAsync(new ProcessEvent
                    {
                        Output = new Output
                        {
                            Stream = evt.Output.Stream == StreamKind.Stderr ? Output.Types.Stream.Stderr : Output.Types.Stream.Stdout,
                            Offset = evt.Output.Offset,
                            Data = evt.Output.Data,
                        },
                    });
                    break;
                case AgentEvent.KindOneofCase.Missed:
                    await responses.WriteAsync(new ProcessEvent { Missed = new Protocol.Api.OutputMissed { From = evt.Missed.From, To = evt.Missed.To } });
                    break;
                case AgentEvent.KindOneofCase.Exited:
                    await responses.WriteAsync(new ProcessEvent
                    {
                        Exited = new ProcessExited { ExitCode = evt.Exited.ExitCode, Signal = evt.Exited.Signal },
                    });
                    return;
                case AgentEvent.KindOneofCase.Error:
                    throw new RpcException(new Grpc.Core.Status(StatusCode.Internal, $"process {stream.ProcessId}: {evt.Error.Message}"));
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
