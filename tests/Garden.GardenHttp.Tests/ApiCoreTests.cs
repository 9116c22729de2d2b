using System.Reflection;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Garden.Actors;
using Garden.Host.ApiCore;
using Garden.Host.GardenHttp;
using Garden.Host.Remote;
using Google.Protobuf;
using Xunit;
using Api = Garden.Protocol.Api;

namespace Garden.GardenHttp.Tests;

/// <summary>The adapters over the API core, without a daemon: Akka.Remote's table reaches the core method of every rpc
/// of garden.proto, and the Garden HTTP backend forwards to the core.</summary>
public sealed class ApiCoreTests
{
    /// <summary>An IGardenApi that records each call by method name; a method without a handler fails with Unavailable.</summary>
    public class RecordingApi : DispatchProxy
    {
        public List<string> Calls { get; } = [];
        public Dictionary<string, Func<object?[], object?>> Handlers { get; } = [];

        protected override object? Invoke(MethodInfo? method, object?[]? args)
        {
            lock (Calls) Calls.Add(method!.Name);
            if (Handlers.TryGetValue(method.Name, out var handler)) return handler(args ?? []);
            var type = method.ReturnType;
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Task<>))
                return typeof(Task).GetMethods().Single(m => m.Name == nameof(Task.FromException) && m.IsGenericMethod)
                    .MakeGenericMethod(type.GetGenericArguments()[0])
                    .Invoke(null, [new GardenException(ErrorKind.Unavailable, $"recorded {method.Name}")]);
            throw new InvalidOperationException($"no handler for {method.Name}");
        }

        public static (IGardenApi Api, RecordingApi Recorder) Create()
        {
            var api = DispatchProxy.Create<IGardenApi, RecordingApi>();
            return (api, (RecordingApi)(object)api);
        }
    }

    private static async IAsyncEnumerable<T> Yield<T>(IEnumerable<T> items, Exception? thenThrow = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await Task.Yield();
        foreach (var i in items) yield return i;
        if (thenThrow is not null) throw thenThrow;
    }

    [Fact]
    public async Task Akka_Remote_performs_every_rpc_of_garden_proto_by_the_core_method_of_its_name()
    {
        var service = Api.GardenReflection.Descriptor.Services.Single();
        Assert.Equal(27, service.Methods.Count);
        foreach (var rpc in service.Methods)
        {
            var (api, recorder) = RecordingApi.Create();
            recorder.Handlers["Events"] = _ => Yield<Api.ContainerEvent>([]);
            recorder.Handlers["StreamOut"] = _ => Yield<Api.StreamOutChunk>([]);
            var request = (IMessage)Activator.CreateInstance(rpc.InputType.ClrType)!;
            var streaming = rpc.IsClientStreaming || rpc.IsServerStreaming;
            var call = ApiCalls.Streaming(api, request);
            var unary = ApiCalls.Unary(api, request, CancellationToken.None);
            Assert.True(streaming ? call is not null && unary is null : call is null && unary is not null, $"{rpc.Name}: not in ApiCalls as a {(streaming ? "stream" : "unary call")}");
            if (call is not null)
            {
                Assert.Equal(rpc.Name, call.Name);
                Assert.Equal(rpc.InputType.ClrType, call.RequestType);
                Assert.Equal(rpc.InputType.FullName, call.RequestName);
                var requests = Channel.CreateUnbounded<IMessage>();
                requests.Writer.Complete();
                var responses = new List<IMessage>();
                try
                {
                    await call.Perform(requests.Reader, responses.Add, CancellationToken.None);
                }
                catch (GardenException)
                {
                    // the recorder's answer
                }
            }
            else
            {
                await Assert.ThrowsAsync<GardenException>(() => unary!);
            }
            var expected = rpc.Name is "Events" or "StreamOut" ? rpc.Name : rpc.Name + "Async";
            Assert.Equal([expected], recorder.Calls);
        }
    }

    [Fact]
    public async Task Events_over_Akka_Remote_say_Subscribed_before_the_first_event()
    {
        var (api, recorder) = RecordingApi.Create();
        recorder.Handlers["Events"] = _ => Yield([new Api.ContainerEvent { Handle = "h", Kind = "created" }]);
        var call = ApiCalls.Streaming(api, new Api.EventsRequest { Handle = "h" })!;
        var responses = new List<IMessage>();
        await call.Perform(Channel.CreateUnbounded<IMessage>().Reader, responses.Add, CancellationToken.None);
        Assert.IsType<Garden.Protocol.Remote.Subscribed>(responses[0]);
        Assert.Equal("created", Assert.IsType<Api.ContainerEvent>(responses[1]).Kind);
    }

    [Fact]
    public async Task The_Garden_HTTP_backend_fails_StreamOut_before_answering_when_the_tool_cannot_start()
    {
        var (api, recorder) = RecordingApi.Create();
        recorder.Handlers["StreamOut"] = _ => Yield<Api.StreamOutChunk>([], GardenException.UnknownHandle("nope"));
        var e = await Assert.ThrowsAsync<GardenException>(() => new ApiHttpBackend(api).StreamOutAsync(new Api.StreamOutRequest { Handle = "nope" }, default));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
    }

    [Fact]
    public async Task The_Garden_HTTP_backend_streams_out_every_piece_and_a_late_failure_from_a_read()
    {
        var (api, recorder) = RecordingApi.Create();
        recorder.Handlers["StreamOut"] = _ => Yield(
            [new Api.StreamOutChunk { Data = ByteString.CopyFromUtf8("abc") }, new Api.StreamOutChunk { Data = ByteString.CopyFromUtf8("defg") }]);
        await using (var stream = await new ApiHttpBackend(api).StreamOutAsync(new Api.StreamOutRequest { Handle = "h" }, default))
        {
            var buffer = new MemoryStream();
            await stream.CopyToAsync(buffer, 2);
            Assert.Equal("abcdefg", System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        }

        recorder.Handlers["StreamOut"] = _ => Yield([new Api.StreamOutChunk { Data = ByteString.CopyFromUtf8("abc") }],
            new GardenException(ErrorKind.Internal, "stream-out: tar failed"));
        await using var failing = await new ApiHttpBackend(api).StreamOutAsync(new Api.StreamOutRequest { Handle = "h" }, default);
        var e = await Assert.ThrowsAsync<GardenException>(() => failing.CopyToAsync(new MemoryStream()));
        Assert.Contains("tar failed", e.Message);
    }

    [Fact]
    public async Task The_Garden_HTTP_backend_hands_StreamIn_the_archive_as_it_reads_it()
    {
        var (api, recorder) = RecordingApi.Create();
        var received = new MemoryStream();
        recorder.Handlers["StreamInAsync"] = args => Task.Run(async () =>
        {
            await foreach (var piece in (IAsyncEnumerable<ReadOnlyMemory<byte>>)args[1]!) received.Write(piece.Span);
            return new Api.StreamInResponse();
        });
        var archive = new byte[200_000];
        Random.Shared.NextBytes(archive);
        await new ApiHttpBackend(api).StreamInAsync(new Api.StreamInRequest { Handle = "h", Path = "/tmp" }, new MemoryStream(archive), default);
        Assert.Equal(archive, received.ToArray());
    }
}
