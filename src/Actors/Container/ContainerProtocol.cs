using System.Collections.Immutable;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Linux.Network;

namespace Garden.Actors.Container;

/// <summary>The messages of the <see cref="ContainerActor"/>: what the host forwards to it, what it answers, and its own
/// timer and notifier messages. Nested, so none shares a name with a garden.v1 protobuf type (<c>ContainerProtocol.ContainerInfo</c>
/// is the domain record, <c>Garden.Protocol.Api.ContainerInfo</c> the wire one).</summary>
public static class ContainerProtocol
{
    public sealed record GetInfo(string Handle) : IContainerCommand;

    public sealed record ProcessSummary(string Id, bool Running, int? ExitCode);

    public sealed record ContainerInfo(
        string Handle,
        ContainerLifecycle State,
        ImmutableList<string> Events,
        string ContainerPath,
        ImmutableArray<string> ProcessIds,
        ImmutableDictionary<string, string> Properties,
        string Rootfs,
        bool Privileged,
        Limits Limits,
        NetworkAllocation? Network = null,
        ImmutableList<PortMapping>? MappedPorts = null,
        ImmutableArray<BindMount> BindMounts = default,
        TimeSpan GraceTime = default,
        ulong OomKills = 0,
        DateTimeOffset? LastOom = null,
        Garden.Linux.UserNamespaces.IdMapping? UserNamespace = null)
    {
        /// <summary>Not privileged, yet without a user namespace: made by a build before user namespaces, it runs as host root.</summary>
        public bool EarlierHostRoot => !Privileged && UserNamespace is null;
    }

    public sealed record StopContainer(string Handle, bool Kill) : IContainerCommand;

    public sealed record RunProcess(string Handle, ProcessSpec Spec, bool Detach) : IContainerCommand;

    public sealed record AttachProcess(string Handle, string ProcessId, ulong FromOffset) : IContainerCommand;

    public sealed record SignalProcess(string Handle, string ProcessId, int Signal) : IContainerCommand;

    /// <summary>Resize the terminal of a process started with one.</summary>
    public sealed record SetProcessTty(string Handle, string ProcessId, TtySize Size) : IContainerCommand;

    public sealed record GetProperties(string Handle) : IContainerCommand;

    public sealed record PropertiesResult(ImmutableDictionary<string, string> Properties);

    public sealed record GetProperty(string Handle, string Key) : IContainerCommand;

    public sealed record PropertyValue(string Value);

    public sealed record SetProperty(string Handle, string Key, string Value) : IContainerCommand;

    public sealed record RemoveProperty(string Handle, string Key) : IContainerCommand;

    /// <summary>Change limits live: every non-null field of Change; the reply holds what is in force afterwards.</summary>
    public sealed record SetLimits(string Handle, Limits Change) : IContainerCommand;

    public sealed record GetLimits(string Handle) : IContainerCommand;

    public sealed record LimitsInForce(Limits Limits);

    public sealed record GetMetrics(string Handle) : IContainerCommand;

    public sealed record ContainerMetrics(
        string Handle,
        Garden.Linux.Cgroups.CgroupMetrics Cgroup,
        ulong DiskUsedBytes,
        ulong DiskLimitBytes,
        TimeSpan Age,
        NetCounters Network = default,
        ulong BaseRootfsBytes = 0);

    /// <summary>DNAT a host port (0 = one from the pool) to a container port. The HostActor takes the port from its pool and
    /// sends the container <see cref="ApplyNetIn"/> with the port it took; the container answers the host (NetInInForce or
    /// Status.Failure), which keeps or returns the port and answers the client.</summary>
    public sealed record NetIn(string Handle, int HostPort, int ContainerPort) : IContainerCommand;

    public sealed record ApplyNetIn(string Handle, PortMapping Mapping) : IContainerCommand;

    public sealed record NetInInForce(PortMapping Mapping);

    /// <summary>Allow the container to reach what the rules name.</summary>
    public sealed record NetOut(string Handle, ImmutableArray<NetOutRule> Rules) : IContainerCommand;

    /// <summary>How long the container may stay idle (no request, no client attached to a process) before it is destroyed;
    /// zero = never. Journaled; the timer starts afresh from now.</summary>
    public sealed record SetGraceTime(string Handle, TimeSpan GraceTime) : IContainerCommand;

    /// <summary>The container's grace timer fired (stale unless <paramref name="Generation"/> is the timer's latest start).</summary>
    internal sealed record GraceTimeUp(long Generation);

    /// <summary>The kernel killed a process of the container for want of memory (from the OOM notifier's thread).</summary>
    internal sealed record OomKilled
    {
        public static readonly OomKilled Instance = new();
    }

    /// <summary>The OOM report interval ended: report the kills counted since the last one.</summary>
    internal sealed record OomFlush
    {
        public static readonly OomFlush Instance = new();
    }
}
