using Akka.Actor;

namespace Garden.Host.ApiCore;

/// <summary>What the API core needs: the HostActor and how long to wait for it, and the ActorSystem whose EventStream
/// feeds Events.</summary>
public sealed record GatewayContext(IActorRef Host, TimeSpan AskTimeout, ActorSystem System);
