using Akka.Actor;

namespace Garden.Host.Gateway;

/// <summary>What the gateway needs: the HostActor and how long to wait for it, and the ActorSystem whose EventStream
/// feeds Events.</summary>
public sealed record GatewayContext(IActorRef Host, TimeSpan AskTimeout, ActorSystem System);
