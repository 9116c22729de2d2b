namespace Garden.Actors.Events;

/// <summary>What the event feed carries (published by the containers, copied out by <see cref="EventSubscriber"/>). Nested, so
/// it never shares a name with the garden.v1 protobuf <c>ContainerEvent</c>.</summary>
public static class EventsProtocol
{
    /// <summary>Something that happened to a container or one of its processes, published on the ActorSystem's EventStream
    /// once it is journaled (for the container's own changes), so a subscriber never hears of a change that could be lost.
    /// Not journaled itself: Events is a live feed, not a history.</summary>
    public sealed record ContainerEvent(string Handle, string Kind, DateTimeOffset At, string? ProcessId = null, int? ExitCode = null,
        string Detail = "")
    {
        public const string Created = "created";
        public const string Destroyed = "destroyed";
        public const string Stopped = "stopped";
        public const string OutOfMemory = "out of memory";
        public const string ProcessExited = "process exited";
        public const string Reaped = "reaped by grace time";
        public const string Reattached = "reattached";
        public const string Broken = "broken";

        public static ContainerEvent Now(string handle, string kind, string detail = "") => new(handle, kind, DateTimeOffset.UtcNow, Detail: detail);
    }
}
