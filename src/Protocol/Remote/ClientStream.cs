using System.Threading.Channels;
using Akka.Actor;
using Garden.Protocol.Remote;
using Grpc.Core;
using Status = Grpc.Core.Status;

namespace Garden.Protocol.Client;

internal interface IClientStream
{
    void Send(object message);
}

/// <summary>One streaming call over Akka.Remote: a client actor that forwards requests to /user/host and collects the
/// responses, read through <see cref="Reader"/>. Stopping the actor (Dispose) tells gardend, through DeathWatch, that
/// nobody reads any more.</summary>
internal sealed class ClientStream<TResponse> : IClientStream, IDisposable where TResponse : class
{
    private readonly Channel<object> _responses = Channel.CreateUnbounded<object>(new UnboundedChannelOptions { SingleReader = true });
    private readonly IActorRef _actor;
    private readonly CancellationTokenRegistration _cancellation;
    private readonly TaskCompletionSource<Metadata> _headers = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ClientStream(ActorSystem system, ActorSelection api, string name, TimeSpan identifyTimeout, CancellationToken ct, Task reachable)
    {
        _ = reachable.ContinueWith(t =>
        {
            if (t.Exception?.InnerException is RpcException e)
                _responses.Writer.TryWrite(new ApiError { Code = e.StatusCode.ToString(), Message = e.Status.Detail });
        }, TaskScheduler.Default);
        _actor = system.ActorOf(Props.Create(() => new StreamClientActor(api, name, identifyTimeout, _responses.Writer)));
        Reader = new ResponseReader(_responses.Reader, name, _headers);
        _cancellation = ct.Register(() =>
        {
            _responses.Writer.TryWrite(new ApiError { Code = nameof(StatusCode.Cancelled), Message = $"{name}: cancelled" });
            _actor.Tell(PoisonPill.Instance);
        });
    }

    public IAsyncStreamReader<TResponse> Reader { get; }

    /// <summary>Completes when gardend says the stream is subscribed (<see cref="Subscribed"/>, Events), or fails with the
    /// call's error; for the other streams it is complete at once.</summary>
    public Task<Metadata> Headers(bool awaitSubscribed)
    {
        if (!awaitSubscribed) return Task.FromResult(new Metadata());
        ((ResponseReader)Reader).HeadersRead = WaitForHeaders();
        return _headers.Task;
    }

    /// <summary>Reads ahead until Subscribed arrives (it is the first message gardend sends on an Events stream).</summary>
    private async Task WaitForHeaders()
    {
        try
        {
            await ((ResponseReader)Reader).PeekHeadersAsync().ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _headers.TrySetException(e);
        }
    }

    public void Send(object message) => _actor.Tell(new StreamClientActor.Outgoing(message));

    public void Dispose()
    {
        _cancellation.Dispose();
        _actor.Tell(PoisonPill.Instance);
    }

    private sealed class ResponseReader(ChannelReader<object> channel, string name, TaskCompletionSource<Metadata> headers)
        : IAsyncStreamReader<TResponse>
    {
        private object? _peeked;

        /// <summary>Done once the read-ahead for Subscribed is over (MoveNext reads only then: one reader at a time).</summary>
        public Task HeadersRead { get; set; } = Task.CompletedTask;

        public TResponse Current { get; private set; } = null!;

        /// <summary>Consumes Subscribed when it is first; anything else (an error) is kept for MoveNext and fails the headers.</summary>
        public async Task PeekHeadersAsync()
        {
            while (await channel.WaitToReadAsync().ConfigureAwait(false))
            {
                if (!channel.TryRead(out var m)) continue;
                if (m is Subscribed) { headers.TrySetResult(new Metadata()); return; }
                _peeked = m;
                if (m is ApiError e) throw AkkaCallInvoker.ToRpc(e);
                headers.TrySetResult(new Metadata());
                return;
            }
            throw new RpcException(new Status(StatusCode.Internal, $"{name}: the stream ended before it was subscribed"));
        }

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            await HeadersRead.WaitAsync(cancellationToken).ConfigureAwait(false);
            while (_peeked is not null || await channel.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                object? m = _peeked;
                _peeked = null;
                if (m is null && !channel.TryRead(out m)) continue;
                switch (m)
                {
                    case Subscribed: continue;
                    case TResponse r: Current = r; return true;
                    case ApiError e: throw AkkaCallInvoker.ToRpc(e);
                    case StreamEnd: return false;
                    default: throw new RpcException(new Status(StatusCode.Internal, $"{name}: unexpected message {m.GetType().FullName}"));
                }
            }
            return false;
        }
    }
}

/// <summary>The client end of one streaming call: finds /user/host (Identify), watches it, forwards this call's requests
/// to it in order and hands its responses, StreamEnd or ApiError to the reader.</summary>
internal sealed class StreamClientActor : ReceiveActor, IWithStash
{
    /// <summary>A request of this call, from the caller (everything else that arrives is gardend's answer).</summary>
    public sealed record Outgoing(object Message);

    public IStash Stash { get; set; } = null!;

    public StreamClientActor(ActorSelection api, string name, TimeSpan identifyTimeout, ChannelWriter<object> responses)
    {
        void Fail(string code, string message)
        {
            responses.TryWrite(new ApiError { Code = code, Message = message });
            responses.TryComplete();
            Context.Stop(Self);
        }

        // no message id: gardend's endpoint deserializes nothing but API messages, Identify and heartbeats (an id would
        // be a string, which it refuses)
        api.Tell(new Identify(null));
        Context.SetReceiveTimeout(identifyTimeout);
        Receive<ActorIdentity>(id =>
        {
            Context.SetReceiveTimeout(null);
            if (id.Subject is not { } server)
            {
                Fail(nameof(StatusCode.Unavailable), $"{name}: no gardend API at {api.PathString} (is gardend running with --akka-remote?)");
                return;
            }
            Context.Watch(server);
            Stash.UnstashAll();
            Become(() =>
            {
                Receive<Terminated>(_ => Fail(nameof(StatusCode.Unavailable), $"{name}: gardend at {server.Path.Address} went away"));
                Receive<Outgoing>(o => server.Tell(o.Message));
                ReceiveAny(m =>
                {
                    responses.TryWrite(m);
                    if (m is StreamEnd or ApiError) { responses.TryComplete(); Context.Stop(Self); }
                });
            });
        });
        Receive<ReceiveTimeout>(_ => Fail(nameof(StatusCode.Unavailable),
            $"{name}: no answer from {api.PathString} within {identifyTimeout.TotalSeconds:0}s (is gardend running with --akka-remote?)"));
        ReceiveAny(_ => Stash.Stash());
    }
}
