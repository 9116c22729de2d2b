using System.Collections.Immutable;

namespace Garden.Actors.Host;

/// <summary>A request about one container: the HostActor checks it (<see cref="Requests.Problem"/>) and forwards it to
/// that container's actor.</summary>
public interface IContainerCommand
{
    string Handle { get; }
}

/// <summary>The messages of the <see cref="HostActor"/>: what clients ask it, what it answers, and what its containers tell
/// it. Nested, so no message shares a name with a garden.v1 protobuf type: refer to them qualified, <c>HostProtocol.Ping</c>
/// (as to <c>ContainerProtocol.X</c>, <c>ProcessProtocol.X</c> and <c>EventsProtocol.ContainerEvent</c>).</summary>
public static class HostProtocol
{
    public sealed record Ping
    {
        public static readonly Ping Instance = new();
    }

    public sealed record Pong(string Version);

    public sealed record GetCapacity
    {
        public static readonly GetCapacity Instance = new();
    }

    public sealed record Capacity(ulong MemoryBytes, ulong DiskBytes, ulong MaxContainers);

    /// <summary>From a client: the spec as asked (empty handle and rootfs = generated / the default). From the host to the
    /// new container: the spec as admitted (<see cref="HostState.Admit"/>).</summary>
    /// <param name="PoolEntry">From the host to the new container: the warm pool entry it takes (its runtime name), or null.</param>
    public sealed record CreateContainer(ContainerSpec Spec, string? PoolEntry = null);

    public sealed record ContainerCreated(string Handle);

    public sealed record DestroyContainer(string Handle) : IContainerCommand;

    public sealed record ContainerDestroyed(string Handle);

    /// <summary>Handles of containers that serve (not being created or destroyed) whose properties hold every key=value of
    /// the filter; answered from the host's <see cref="ContainerDirectory"/>, without asking any container.</summary>
    public sealed record ListContainers(ImmutableDictionary<string, string> Filter);

    public sealed record ContainerList(ImmutableArray<string> Handles);

    public sealed record BulkInfo(ImmutableArray<string> Handles);

    /// <summary>Per handle: the info, or the error that handle got.</summary>
    public sealed record BulkInfoResult(ImmutableDictionary<string, Container.ContainerProtocol.ContainerInfo> Infos,
        ImmutableDictionary<string, GardenException> Errors);

    public sealed record BulkMetrics(ImmutableArray<string> Handles);

    public sealed record BulkMetricsResult(ImmutableDictionary<string, Container.ContainerProtocol.ContainerMetrics> Metrics,
        ImmutableDictionary<string, GardenException> Errors);

    /// <summary>Reply for requests that return nothing but success.</summary>
    public sealed record Done
    {
        public static readonly Done Instance = new();
    }

    /// <summary>Asked by a stopping gardend (CoordinatedShutdown's service-stop): answered with <see cref="Done"/> once
    /// no destroy is in flight and every pending release has ended and is journaled (<c>ReleaseFinished</c>). A release
    /// waiting for its retry is tried again at once, and every failure from then on after a second.</summary>
    internal sealed record FinishReleases
    {
        public static readonly FinishReleases Instance = new();
    }

    // ---- what containers tell the host ----

    /// <summary>A recovered container has been reconciled with the kernel and serves.</summary>
    internal sealed record ContainerReady(string Handle, bool Healthy = true);

    /// <summary>A container is gone (destroyed, a failed create undone, or nothing to recover): the host releases its handle.</summary>
    internal sealed record ContainerGone(string Handle);

    /// <summary>A pea (a process with its own root) of a container started or was found after a restart (Running), or was
    /// released: Garden's clients ask for a pea's metrics by its process id, as if it were a container.</summary>
    internal sealed record PeaChanged(string Handle, string ProcessId, bool Running);

    /// <summary>What List needs to know of a container, told by the container when it recovers and whenever its lifecycle
    /// or properties change (before it answers the request that changed them, so a List after that answer sees it).</summary>
    internal sealed record ContainerChanged(string Handle, ContainerLifecycle Lifecycle, ImmutableDictionary<string, string> Properties);
}
