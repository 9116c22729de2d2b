using System.Collections.Immutable;

namespace Garden.Actors.Container;

/// <summary>What happened to a container; the state is the fold of these (the journal of a later issue stores them).</summary>
public interface IContainerEvent;

public sealed record ContainerCreatedEvent(ContainerSpec Spec, string Rootfs) : IContainerEvent;
public sealed record PropertySetEvent(string Key, string Value) : IContainerEvent;
public sealed record PropertyRemovedEvent(string Key) : IContainerEvent;
public sealed record LifecycleChangedEvent(ContainerLifecycle State, string? Note) : IContainerEvent;

/// <summary>The pure state of one container. Decisions are plain functions of it; the actor persists, applies, replies.</summary>
public sealed record ContainerState(
    string Handle,
    ContainerSpec? Spec,
    string Rootfs,
    ContainerLifecycle Lifecycle,
    ImmutableDictionary<string, string> Properties,
    ImmutableList<string> Events)
{
    public static ContainerState Empty(string handle) => new(handle, null, "", ContainerLifecycle.Creating,
        ImmutableDictionary<string, string>.Empty, ImmutableList<string>.Empty);

    public ContainerState Apply(IContainerEvent evt) => evt switch
    {
        ContainerCreatedEvent c => this with
        {
            Spec = c.Spec, Rootfs = c.Rootfs, Lifecycle = ContainerLifecycle.Active, Properties = c.Spec.Properties,
        },
        PropertySetEvent p => this with { Properties = Properties.SetItem(p.Key, p.Value) },
        PropertyRemovedEvent r => this with { Properties = Properties.Remove(r.Key) },
        LifecycleChangedEvent l => this with
        {
            Lifecycle = l.State, Events = l.Note is null ? Events : Events.Add(l.Note),
        },
        _ => throw new ArgumentOutOfRangeException(nameof(evt), evt.GetType().Name, "unknown container event"),
    };

    /// <summary>Why a process cannot be started now, or null.</summary>
    public GardenException? CannotRun() => Lifecycle switch
    {
        ContainerLifecycle.Active => null,
        ContainerLifecycle.Stopped or ContainerLifecycle.Stopping =>
            new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} is {Describe(Lifecycle)}: it runs no new processes"),
        _ => new GardenException(ErrorKind.FailedPrecondition, $"container {Handle} is {Describe(Lifecycle)}"),
    };

    public static string Describe(ContainerLifecycle l) => l.ToString().ToLowerInvariant();
}
