using System.Threading.Channels;
using Akka.Actor;
using Garden.Protocol.Remote;
using Google.Protobuf;
using Grpc.Core;

namespace Garden.Host.Remote;

/// <summary>One streaming call from one remote client actor. It watches the client: when the client (or its whole
/// ActorSystem) goes away mid-stream, the call is cancelled as a gRPC call is when its connection drops — the process
/// keeps running in its container and can be attached again.</summary>
public sealed class StreamSessionActor : ReceiveActor
{
    private sealed record Finished(Exception? Error);

    private readonly Channel<IMessage> _requests = Channel.CreateUnbounded<IMessage>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _cancel = new();
    private readonly IActorRef _client;

    public static Props Props(StreamCall call, IActorRef client) => Akka.Actor.Props.Create(() => new StreamSessionActor(call, client));

    public StreamSessionActor(StreamCall call, IActorRef client)
    {
        _client = client;
        Context.Watch(client);
        var self = Self;
        var token = _cancel.Token;
        Task.Run(() => call.Perform(_requests.Reader, m => client.Tell(m, self), token))
            .ContinueWith(t => new Finished(t.Exception), TaskScheduler.Default)
            .PipeTo(self);

        Receive<Finished>(f =>
        {
            _client.Tell(f.Error is null ? new StreamEnd() : ApiCalls.ToApiError(f.Error));
            Context.Stop(Self);
        });
        Receive<Terminated>(t => t.ActorRef.Equals(_client), _ =>
        {
            // nobody reads the rest: end the call; Finished then stops this actor
            _cancel.Cancel();
            _requests.Writer.TryComplete();
        });
        Receive<StreamEnd>(_ => _requests.Writer.TryComplete());
        Receive<IMessage>(m => m.GetType() == call.RequestType, m => _requests.Writer.TryWrite(m));
        ReceiveAny(m => _client.Tell(new ApiError
        {
            Code = nameof(StatusCode.InvalidArgument),
            Message = $"{call.Name} stream: expected {call.RequestName} or garden.remote.v1.StreamEnd, " +
                      $"received {(m is IMessage p ? p.Descriptor.FullName : m?.GetType().FullName)}",
        }));
    }

    protected override void PostStop()
    {
        _cancel.Cancel();
        _requests.Writer.TryComplete();
    }
}
