using System.Threading.Channels;
using Akka.Actor;

namespace Garden.Actors.Events;

/// <summary>One Events call's subscription: copies the <see cref="ContainerEvent"/>s of the EventStream (all, or those of one
/// handle) into a channel the gateway drains into its gRPC stream. The caller subscribes it (synchronously, so no event
/// published after the call began is missed) and stops it when the client goes; stopping unsubscribes it.</summary>
public sealed class EventSubscriber : ReceiveActor
{
    public EventSubscriber(ChannelWriter<EventsProtocol.ContainerEvent> writer, string? handle)
    {
        // The channel drops the oldest event when a client falls far behind: a slow reader never holds up the daemon.
        Receive<EventsProtocol.ContainerEvent>(e => handle is null || e.Handle == handle, e => writer.TryWrite(e));
    }

    public static Props Props(ChannelWriter<EventsProtocol.ContainerEvent> writer, string? handle) =>
        Akka.Actor.Props.Create(() => new EventSubscriber(writer, handle));

    protected override void PostStop()
    {
        Context.System.EventStream.Unsubscribe(Self);
        base.PostStop();
    }
}

/// <summary>How a caller outside the actors (the gateway) follows events.</summary>
public static class EventFeed
{
    /// <summary>Starts a subscriber and subscribes it before returning; stop the returned actor to end the subscription.</summary>
    public static IActorRef Subscribe(ActorSystem system, ChannelWriter<EventsProtocol.ContainerEvent> writer, string? handle)
    {
        var subscriber = system.ActorOf(EventSubscriber.Props(writer, handle));
        system.EventStream.Subscribe(subscriber, typeof(EventsProtocol.ContainerEvent));
        return subscriber;
    }
}
