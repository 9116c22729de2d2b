using Akka.Actor;
using Akka.Event;
using Garden.Host.ApiCore;
using Garden.Protocol.Remote;
using Google.Protobuf;
using Grpc.Core;

namespace Garden.Host.Remote;

/// <summary>/user/host: the Akka.Remote face of the API. A remote client sends a garden.v1 request message and gets the
/// response message or an <see cref="ApiError"/>. A streaming rpc (Run, Attach, StreamIn, StreamOut) is a session with
/// the sending actor: its first request opens it, its later messages (stdin, archive bytes) and a final
/// <see cref="StreamEnd"/> go to the same session, which answers with response messages and then StreamEnd or ApiError.
/// Every request is performed by the API core (<see cref="IGardenApi"/>, through <see cref="ApiCalls"/>), as over gRPC.</summary>
public sealed class ApiActor : ReceiveActor
{
    private readonly IGardenApi _api;
    private readonly Dictionary<IActorRef, IActorRef> _sessions = new();
    private readonly ILoggingAdapter _log = Context.GetLogger();

    public static Props Props(IGardenApi api) => Akka.Actor.Props.Create(() => new ApiActor(api));

    public ApiActor(IGardenApi api)
    {
        _api = api;
        Receive<Terminated>(t =>
        {
            foreach (var client in _sessions.Where(s => s.Value.Equals(t.ActorRef)).Select(s => s.Key).ToList())
                _sessions.Remove(client);
        });
        ReceiveAny(message =>
        {
            // Nothing a peer sends may stop or restart this actor (its open streams would go): a message that makes it
            // throw is answered and logged.
            try
            {
                Handle(message);
            }
            catch (Exception e)
            {
                _log.Error(e, "api: {0} from {1} failed", Describe(message), Sender);
                Sender.Tell(new ApiError { Code = nameof(StatusCode.Internal), Message = $"{Describe(message)}: {e.Message}" });
            }
        });
    }

    /// <summary>A stream session that throws ends its own stream (its client gets an error through DeathWatch); it is
    /// never restarted, which would perform its first request a second time.</summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        _log.Error(e, "api: a stream session failed");
        return Directive.Stop;
    });

    private void Handle(object message)
    {
        if (_sessions.TryGetValue(Sender, out var session))
        {
            session.Forward(message);
            return;
        }
        if (ApiCalls.Streaming(_api, message) is { } call)
        {
            if (Sender.IsNobody() || Sender.Equals(Context.System.DeadLetters))
            {
                _log.Warning("api: {0} without a sender: a stream needs an actor to answer to", Describe(message));
                return;
            }
            var s = Context.ActorOf(StreamSessionActor.Props(call, Sender));
            Context.Watch(s);
            _sessions[Sender] = s;
            return;
        }
        if (ApiCalls.Unary(_api, message, CancellationToken.None) is not { } reply)
        {
            _log.Warning("api: unknown message {0} from {1}", Describe(message), Sender);
            Sender.Tell(new ApiError
            {
                Code = nameof(StatusCode.InvalidArgument),
                Message = $"unknown message {Describe(message)}: send a request message of garden.proto (garden.v1.PingRequest, ...)",
            });
            return;
        }
        reply.PipeTo(Sender, Self, success: r => r, failure: ApiCalls.ToApiError);
    }

    private static string Describe(object message) => message switch
    {
        IMessage m => m.Descriptor.FullName,
        null => "null",
        _ => message.GetType().FullName ?? message.GetType().Name,
    };
}
