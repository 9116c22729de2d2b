using Grpc.Core;

namespace Garden.Host.Remote;

/// <summary>The ServerCallContext GardenService sees when a request came over Akka.Remote: no headers, no deadline,
/// cancelled when the remote client went away.</summary>
internal sealed class ActorCallContext(string method, string peer, CancellationToken cancellation) : ServerCallContext
{
    private readonly Metadata _trailers = [];

    protected override string MethodCore => method;
    protected override string HostCore => "akka";
    protected override string PeerCore => peer;
    protected override DateTime DeadlineCore => DateTime.MaxValue;
    protected override Metadata RequestHeadersCore => [];
    protected override CancellationToken CancellationTokenCore => cancellation;
    protected override Metadata ResponseTrailersCore => _trailers;
    protected override Status StatusCore { get; set; }
    protected override WriteOptions? WriteOptionsCore { get; set; }
    protected override AuthContext AuthContextCore => new(null, []);
    protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) =>
        throw new NotSupportedException("no context propagation over Akka.Remote");
    protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
}
