using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Garden.Host.ApiCore;
using Garden.Host.Gateway;
using Garden.Protocol.Api;
using Garden.Protocol.Remote;
using Google.Protobuf;

namespace Garden.Host.Remote;

/// <summary>One streaming rpc as a session performs it: the first request, the later ones (stdin, archive bytes) from
/// <c>requests</c>, every response through <c>respond</c>; the task ends with the call.
/// <c>RequestType</c>/<c>RequestName</c>: the message it accepts after the first (its own request message).</summary>
public sealed record StreamCall(string Name, Type RequestType, string RequestName,
    Func<ChannelReader<IMessage>, Action<IMessage>, CancellationToken, Task> Perform);

/// <summary>The Akka.Remote adapter's table: each rpc of garden.v1.Garden by its request message (each rpc has its own),
/// performed by the API core (<see cref="IGardenApi"/>) directly, as gRPC's adapter performs it. No reflection: an rpc
/// added to garden.proto is added here, and ApiCallsTests fails until it is.</summary>
public static class ApiCalls
{
    /// <summary>A unary rpc's response, or null when <paramref name="request"/> is not a unary rpc's request.</summary>
    public static Task<IMessage>? Unary(IGardenApi api, object request, CancellationToken ct) => request switch
    {
        PingRequest r => Box(api.PingAsync(r, ct)),
        CapacityRequest r => Box(api.CapacityAsync(r, ct)),
        CreateRequest r => Box(api.CreateAsync(r, ct)),
        DestroyRequest r => Box(api.DestroyAsync(r, ct)),
        ListRequest r => Box(api.ListAsync(r, ct)),
        InfoRequest r => Box(api.InfoAsync(r, ct)),
        BulkInfoRequest r => Box(api.BulkInfoAsync(r, ct)),
        StopRequest r => Box(api.StopAsync(r, ct)),
        SignalRequest r => Box(api.SignalAsync(r, ct)),
        PropertiesRequest r => Box(api.PropertiesAsync(r, ct)),
        GetPropertyRequest r => Box(api.GetPropertyAsync(r, ct)),
        SetPropertyRequest r => Box(api.SetPropertyAsync(r, ct)),
        RemovePropertyRequest r => Box(api.RemovePropertyAsync(r, ct)),
        LimitRequest r => Box(api.LimitAsync(r, ct)),
        CurrentLimitsRequest r => Box(api.CurrentLimitsAsync(r, ct)),
        MetricsRequest r => Box(api.MetricsAsync(r, ct)),
        BulkMetricsRequest r => Box(api.BulkMetricsAsync(r, ct)),
        NetInRequest r => Box(api.NetInAsync(r, ct)),
        NetOutRequest r => Box(api.NetOutAsync(r, ct)),
        BulkNetOutRequest r => Box(api.BulkNetOutAsync(r, ct)),
        SetTtyRequest r => Box(api.SetTtyAsync(r, ct)),
        SetGraceTimeRequest r => Box(api.SetGraceTimeAsync(r, ct)),
        _ => null,
    };

    private static async Task<IMessage> Box<T>(Task<T> task) where T : IMessage => await task.ConfigureAwait(false);

    /// <summary>A streaming rpc opened by <paramref name="first"/>, or null when it is not a streaming rpc's request.</summary>
    public static StreamCall? Streaming(IGardenApi api, object first) => first switch
    {
        RunRequest r => Call<RunRequest>("Run", async (requests, respond, ct) =>
        {
            await using var process = await api.RunAsync(r, ct).ConfigureAwait(false);
            respond(new ProcessEvent { Started = new ProcessStarted { ProcessId = process.ProcessId } });
            await GardenApi.PumpAsync(process, Read<RunRequest, StdinChunk?>(requests, m => m.Stdin), Write(respond), ct).ConfigureAwait(false);
        }),
        AttachRequest r => Call<AttachRequest>("Attach", async (requests, respond, ct) =>
        {
            await using var process = await api.AttachAsync(r, ct).ConfigureAwait(false);
            respond(new ProcessEvent { Started = new ProcessStarted { ProcessId = process.ProcessId } });
            await GardenApi.PumpAsync(process, Read<AttachRequest, StdinChunk?>(requests, m => m.Stdin), Write(respond), ct).ConfigureAwait(false);
        }),
        StreamInRequest r => Call<StreamInRequest>("StreamIn", async (requests, respond, ct) =>
            respond(await api.StreamInAsync(r, Read<StreamInRequest, ReadOnlyMemory<byte>>(requests, m => m.Data.Memory), ct).ConfigureAwait(false))),
        StreamOutRequest r => Call<StreamOutRequest>("StreamOut", async (_, respond, ct) =>
        {
            await foreach (var chunk in api.StreamOut(r, ct).ConfigureAwait(false)) respond(chunk);
        }),
        EventsRequest r => Call<EventsRequest>("Events", async (_, respond, ct) =>
        {
            var events = api.Events(r, ct);
            respond(new Subscribed());
            await foreach (var e in events.WithCancellation(ct).ConfigureAwait(false)) respond(e);
        }),
        _ => null,
    };

    private static StreamCall Call<T>(string name, Func<ChannelReader<IMessage>, Action<IMessage>, CancellationToken, Task> perform)
        where T : IMessage<T>, new() => new(name, typeof(T), new T().Descriptor.FullName, perform);

    private static Func<ProcessEvent, Task> Write(Action<IMessage> respond) => e =>
    {
        respond(e);
        return Task.CompletedTask;
    };

    /// <summary>The session only lets this rpc's request type into the channel.</summary>
    private static async IAsyncEnumerable<TOut> Read<TRequest, TOut>(ChannelReader<IMessage> requests, Func<TRequest, TOut> select,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var m in requests.ReadAllAsync(ct).ConfigureAwait(false))
            if (m is TRequest r) yield return select(r);
    }

    /// <summary>The one place Akka.Remote maps errors out: whatever the core threw (a GardenException from the domain,
    /// most often) as the status gRPC would answer with (<see cref="Errors"/>).</summary>
    public static ApiError ToApiError(Exception e)
    {
        var status = Errors.ToStatus(e);
        return new ApiError { Code = status.StatusCode.ToString(), Message = status.Detail };
    }
}
