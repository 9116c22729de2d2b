using System.Collections.Immutable;
using Garden.Linux.Network;

namespace Garden.Actors.Kernel;

/// <summary>What a container's decision asks the kernel to do, as data: decided on the actor thread by
/// <c>ContainerState.Decide</c>, run off it by <see cref="ContainerKernel.RunAsync"/>, its outcome decided on again.
/// Each carries everything it needs (nothing reads the actor's state while it runs).</summary>
public abstract record Effect
{
    /// <summary>A transition: at most one is in flight per container, and whoever waits for it is answered by its
    /// outcome. The others are reads, run side by side, each answering its own asker.</summary>
    public virtual bool Transition => false;

    /// <summary>A live change (limits, firewall): while it is in flight the container takes no other command, so every
    /// request sees the container before or after it, never in between.</summary>
    public virtual bool Holds => false;

    /// <summary>The step's name in the log ("X starting", "X finished in N ms"); null for the quiet reads.</summary>
    public virtual string? Step => null;

    /// <summary>What the "starting" line adds, e.g. " (rootfs /x)".</summary>
    public virtual string Detail => "";

    /// <summary>Makes the container (<see cref="ContainerCreator"/>), or with <paramref name="FromPool"/> takes the warm
    /// pool entry it was given (<see cref="ContainerCreator.TakeAsync"/>); the outcome is the rootfs mount point.</summary>
    public sealed record Create(ContainerSpec Spec, bool FromPool = false) : Effect
    {
        public override bool Transition => true;
        public override string Step => "create";
        public override string Detail => FromPool ? $" (rootfs {Spec.Rootfs}, from the warm pool)" : $" (rootfs {Spec.Rootfs})";
    }

    /// <summary>The rest of a Create whose runc start returned (its agent answers, the steps beside it end), run while the
    /// container journals CreateCompleted; its outcome answers the Create. On failure the container was undone.</summary>
    public sealed record SettleCreate : Effect
    {
        public static readonly SettleCreate Instance = new();
        public override bool Transition => true;
    }

    /// <summary>After a restart: what the kernel holds of the container (<see cref="ContainerReconciler"/>); its rules
    /// are put back where they went missing. With <paramref name="Watch"/>, a healthy container's OOM notification and
    /// agent log are followed again. The outcome is <see cref="KernelFindings"/>.</summary>
    public sealed record Reconcile(string RootfsMount, NetworkAllocation? Network, ImmutableList<PortMapping> NetIn,
        ImmutableList<NetOutRule> NetOut, bool Watch) : Effect
    {
        public override bool Transition => true;
        public override string Step => "reconcile";
    }

    /// <summary>TERM every process of the container, KILL what is left after the stop grace (at once with
    /// <paramref name="Kill"/>).</summary>
    public sealed record Stop(bool Kill) : Effect
    {
        public override bool Transition => true;
        public override string Step => "stop";
        public override string Detail => Kill ? " (kill)" : "";
    }

    /// <summary>Releases everything the container holds (<see cref="ContainerDestroyer"/>). <paramref name="Graceful"/>:
    /// its processes get the destroy grace first; else (finishing what an earlier daemon left) the runtime's KILL ends them.
    /// <paramref name="StopOnly"/>: only until nothing can run in it (<see cref="ContainerDestroyer.StopAsync"/>); the
    /// host releases the rest once it is gone (<see cref="ContainerDestroyer.ReleaseAsync"/>).</summary>
    public sealed record Destroy(bool Graceful, NetworkAllocation? Network, bool StopOnly = false) : Effect
    {
        public override bool Transition => true;
        public override string Step => "destroy";
        public override string Detail => Graceful ? "" : " (undo)";
    }

    /// <summary>Writes every non-null field of <paramref name="Change"/> (cgroup, disk size, bandwidth); the container then
    /// holds <c>Current.With(Change)</c> as given (ContainerState.LimitsAsGiven).</summary>
    public sealed record ChangeLimits(Limits Change, Limits Current, NetworkAllocation? Network, string BaseRootfs = "") : Effect
    {
        public override bool Transition => true;
        public override bool Holds => true;
        public override string Step => "limit change";
    }

    /// <summary>Replaces the container's whole rule set in one batch (<see cref="NetIn"/>, <see cref="NetOut"/> as they
    /// will be); what it adds is journaled once it holds.</summary>
    public abstract record ChangeFirewall(NetworkAllocation Network, ImmutableList<PortMapping> NetIn, ImmutableList<NetOutRule> NetOut) : Effect
    {
        public override bool Transition => true;
        public override bool Holds => true;
        public override string Step => "firewall change";
    }

    public sealed record AddNetIn(NetworkAllocation Network, ImmutableList<PortMapping> NetIn, ImmutableList<NetOutRule> NetOut, PortMapping Mapping)
        : ChangeFirewall(Network, NetIn, NetOut)
    {
        public override string Detail => $" (net-in {Mapping.HostPort}:{Mapping.ContainerPort})";
    }

    public sealed record AddNetOut(NetworkAllocation Network, ImmutableList<PortMapping> NetIn, ImmutableList<NetOutRule> NetOut,
        ImmutableArray<NetOutRule> Rules) : ChangeFirewall(Network, NetIn, NetOut)
    {
        public override string Detail => $" (net-out, {Rules.Length} rule{(Rules.Length == 1 ? "" : "s")})";
    }

    /// <summary>The ids of the processes running in the container (the agent's list).</summary>
    public sealed record ListProcesses : Effect
    {
        public static readonly ListProcesses Instance = new();
    }

    /// <summary>Memory, CPU, pids, disk, network counters and age (<c>ContainerMetrics</c>).</summary>
    public sealed record ReadMetrics(NetworkAllocation? Network, long CreatedUnixMs, string BaseRootfs = "") : Effect;

    /// <summary>The cgroup's own count of OOM kills (0 when it cannot be read), for a report of
    /// <paramref name="Kills"/> kills, the last at <paramref name="AtUnixMs"/>.</summary>
    public sealed record CountOomKills(ulong Kills, long AtUnixMs) : Effect;
}

/// <summary>An effect finished; <paramref name="Value"/> is its outcome (see each effect).</summary>
public sealed record EffectDone(Effect Effect, object? Value);

/// <summary>An effect failed with <paramref name="Error"/> (what the effects layer threw).</summary>
public sealed record EffectFailed(Effect Effect, Exception Error);

/// <summary>A Create failed and so did the teardown that should have undone it: something of it may be left on the host.</summary>
public sealed class CreateUndoFailedException(Exception cause, Exception teardown)
    : Exception($"{cause.Message} (and undoing the create failed: {teardown.Message})", cause)
{
    public Exception Cause { get; } = cause;

    public Exception Teardown { get; } = teardown;
}

/// <summary>A container's agent does not answer and the runtime says its init is not running (a process of the container
/// ended PID 1, or the init died): nothing can run in it any more.</summary>
public sealed class ContainerInitGoneException(string status, Exception inner)
    : Exception($"container init gone (the runtime says {status})", inner);
