using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Disk;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Protocol.Agent;

namespace Garden.Actors;

/// <summary>The one map from what the effects layer throws to the domain's errors, for everything a container and its
/// processes do (create, limits, firewall, agent calls, reads, destroy). A refusal the kernel or the agent explains
/// (a bad rootfs, a value the cgroup refuses, a rule that does not hold together, a missing executable) is the caller's
/// InvalidArgument naming the field; an agent that does not answer is Unavailable or FailedPrecondition; the rest is
/// Internal, naming the container and what failed.</summary>
public static class GardenErrors
{
    /// <param name="operation">what failed, for the Internal message: "create", "limit change", "reading metrics", ...</param>
    /// <param name="processId">the process an agent call was about, if any</param>
    public static GardenException From(Exception e, string handle, string operation, string? processId = null) => e switch
    {
        GardenException g => g,
        AggregateException { InnerExceptions.Count: 1 } a => From(a.InnerExceptions[0], handle, operation, processId),
        RootfsException r => GardenException.Invalid("rootfs", r.Message),
        Garden.Linux.Images.ImageException i => GardenException.Invalid("image", i.Message),
        CgroupLimitException c => new GardenException(ErrorKind.InvalidArgument, c.Message, c),
        DiskQuotaException d => GardenException.Invalid("disk", d.Message),
        NetworkSpecException n => GardenException.Invalid(n.Field, n.Problem),
        AgentException a => FromAgent(a, handle, processId),
        AgentUnavailableException { TimedOut: true } u => new GardenException(ErrorKind.Unavailable,
            $"container {handle}: its agent did not answer in time ({u.Reason}); try again, or destroy the container"),
        AgentUnavailableException u => new GardenException(ErrorKind.FailedPrecondition,
            $"container {handle} is not serving processes (its agent is unreachable: {u.Message})"),
        _ => new GardenException(ErrorKind.Internal, $"container {handle}: {operation} failed: {e.Message}", e),
    };

    private static GardenException FromAgent(AgentException a, string handle, string? processId) => a.Code switch
    {
        ErrorCode.NotFound => GardenException.UnknownProcess(handle, processId ?? "?"),
        ErrorCode.AlreadyExists => new GardenException(ErrorKind.AlreadyExists, $"process {processId} already exists in container {handle}"),
        ErrorCode.NotExecutable => GardenException.Invalid("path", a.Message),
        ErrorCode.NoSuchUser => GardenException.Invalid("user", a.Message),
        ErrorCode.BadDirectory => GardenException.Invalid("dir", a.Message),
        ErrorCode.Invalid => new GardenException(ErrorKind.InvalidArgument, a.Message),
        ErrorCode.PidsLimit => new GardenException(ErrorKind.ResourceExhausted,
            $"container {handle} is at its pids limit: no process can start until one exits or the limit is raised"),
        _ => new GardenException(ErrorKind.Internal, $"container {handle}: agent: {a.Message}"),
    };
}
