using System.Reflection;
using System.Threading.Channels;
using Garden.Host.Gateway;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;

namespace Garden.Host.Remote;

/// <summary>One rpc of garden.v1.Garden, callable with protobuf messages instead of a gRPC call. Requests over
/// Akka.Remote are performed by the very same GardenService methods as gRPC requests: one translation, one error
/// mapping, and an rpc added to garden.proto and GardenService is served over Akka.Remote without a line here.</summary>
public sealed class ApiMethod(MethodDescriptor descriptor, MethodInfo method)
{
    public MethodDescriptor Descriptor { get; } = descriptor;
    public Type RequestType => Descriptor.InputType.ClrType;
    public Type ResponseType => Descriptor.OutputType.ClrType;
    public bool IsStreaming => Descriptor.IsClientStreaming || Descriptor.IsServerStreaming;
    public string Path => $"/{Descriptor.Service.FullName}/{Descriptor.Name}";

    /// <summary>A unary rpc: the response message (GardenService's errors stay RpcExceptions).</summary>
    public async Task<IMessage> InvokeUnary(GardenService service, IMessage request, ServerCallContext context)
    {
        var task = (Task)method.Invoke(service, [request, context])!;
        await task.ConfigureAwait(false);
        return (IMessage)task.GetType().GetProperty("Result")!.GetValue(task)!;
    }

    /// <summary>A streaming rpc: requests come from <paramref name="requests"/> (the first one included), responses go
    /// to <paramref name="respond"/>; the task ends with the call. For a client-streaming rpc the one response is the result.</summary>
    public async Task InvokeStreaming(GardenService service, IMessage first, ChannelReader<IMessage> requests, Action<IMessage> respond,
        ServerCallContext context)
    {
        var writer = Activator.CreateInstance(typeof(ResponseWriter<>).MakeGenericType(ResponseType), respond)!;
        object[] args;
        if (!Descriptor.IsClientStreaming) args = [first, writer, context];
        else
        {
            var reader = Activator.CreateInstance(typeof(RequestReader<>).MakeGenericType(RequestType), requests)!;
            args = Descriptor.IsServerStreaming ? [reader, writer, context] : [reader, context];
        }
        var task = (Task)method.Invoke(service, args)!;
        await task.ConfigureAwait(false);
        if (Descriptor.IsClientStreaming && !Descriptor.IsServerStreaming)
            respond((IMessage)task.GetType().GetProperty("Result")!.GetValue(task)!);
    }

    private sealed class RequestReader<T>(ChannelReader<IMessage> channel) : IAsyncStreamReader<T> where T : class
    {
        public T Current { get; private set; } = null!;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            while (await channel.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                if (channel.TryRead(out var m)) { Current = (T)m; return true; }
            return false;
        }
    }

    private sealed class ResponseWriter<T>(Action<IMessage> respond) : IServerStreamWriter<T> where T : IMessage
    {
        public WriteOptions? WriteOptions { get; set; }
        public Task WriteAsync(T message) { respond(message); return Task.CompletedTask; }
    }
}

/// <summary>Every rpc of garden.v1.Garden by its request type (each rpc has its own request message).</summary>
public static class ApiMethods
{
    public static readonly IReadOnlyDictionary<Type, ApiMethod> ByRequest = Build();

    private static Dictionary<Type, ApiMethod> Build()
    {
        var service = Garden.Protocol.Api.GardenReflection.Descriptor.Services.Single();
        var byRequest = new Dictionary<Type, ApiMethod>();
        foreach (var m in service.Methods)
        {
            var method = typeof(GardenService).GetMethod(m.Name, BindingFlags.Public | BindingFlags.Instance)
                ?? throw new InvalidOperationException($"GardenService has no method {m.Name}");
            if (!byRequest.TryAdd(m.InputType.ClrType, new ApiMethod(m, method)))
                throw new InvalidOperationException(
                    $"garden.proto: {m.InputType.FullName} is the request of two rpcs; over Akka.Remote the request type names the rpc");
        }
        return byRequest;
    }
}
