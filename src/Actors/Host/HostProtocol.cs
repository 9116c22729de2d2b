using System.Collections.Immutable;

namespace Garden.Actors.Host;

/// <summary>A request about one container: the HostActor forwards it to that container's actor.</summary>
public interface IContainerCommand
{
    string Handle { get; }
}

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

public sealed record CreateContainer(ContainerSpec Spec);

public sealed record ContainerCreated(string Handle);

public sealed record DestroyContainer(string Handle) : IContainerCommand;

public sealed record ContainerDestroyed(string Handle);

/// <summary>Handles of ready containers whose properties hold every key=value of the filter.</summary>
public sealed record ListContainers(ImmutableDictionary<string, string> Filter);

public sealed record ContainerList(ImmutableArray<string> Handles);

public sealed record BulkInfo(ImmutableArray<string> Handles);

/// <summary>Per handle: the info, or the error that handle got.</summary>
public sealed record BulkInfoResult(ImmutableDictionary<string, Garden.Actors.Container.ContainerInfo> Infos,
    ImmutableDictionary<string, GardenException> Errors);

public sealed record BulkMetrics(ImmutableArray<string> Handles);

public sealed record BulkMetricsResult(ImmutableDictionary<string, Garden.Actors.Container.ContainerMetrics> Metrics,
    ImmutableDictionary<string, GardenException> Errors);

/// <summary>Reply for requests that return nothing but success.</summary>
public sealed record Done
{
    public static readonly Done Instance = new();
}

/// <summary>A recovered container has been reconciled with the kernel and serves.</summary>
internal sealed record ContainerReady(string Handle, bool Healthy = true);

/// <summary>A container is gone (destroyed, a failed create undone, or nothing to recover): the host releases its handle.</summary>
internal sealed record ContainerGone(string Handle);
