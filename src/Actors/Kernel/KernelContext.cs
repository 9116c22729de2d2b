using System.Diagnostics;
using Garden.Actors.Container;
using Garden.Linux.Agent;
using Garden.Linux.Network;

namespace Garden.Actors.Kernel;

/// <summary>One container as the kernel classes see it: its handle, its files on the host, the effects that reach it,
/// its agent, the daemon's settings and its log.</summary>
public sealed record KernelContext(string Handle, ContainerPaths Paths, ContainerEffects Fx, IAgentClient Agent,
    GardenSettings Settings, IContainerLog Log)
{
    /// <summary>The name its kernel objects go by (runc id, cgroup, depot, mount dir, socket, firewall comments, image
    /// lease): the handle, or the warm pool entry's name for a container taken from the pool.</summary>
    public string Name { get; init; } = Handle;

    /// <summary>Awaited before each step (a warm pool entry being made yields to a user's work: Host.IdleGate), or null.</summary>
    public Func<Task>? BeforeStep { get; init; }

    public ContainerNetwork? Network(NetworkAllocation? allocation) =>
        allocation is null ? null : Settings.Network.For(Name, allocation);

    public static ContainerFirewall Firewall(ContainerNetwork network, IEnumerable<PortMapping> netIn, IEnumerable<NetOutRule> netOut) =>
        new(network, [.. netIn], [.. netOut]);

    /// <summary>The bytes of the container's image (its base rootfs), walked once per base and cached; 0 without a walker
    /// (fakes) or a base.</summary>
    public Task<ulong> ImageBytesAsync(string baseRootfs) =>
        Garden.Linux.Images.ImageReference.IsImage(baseRootfs) ? Task.FromResult(Fx.Images?.BytesOf(Name) ?? 0UL)   // its layers'
        : Fx.BaseSizes is { } sizes && baseRootfs.Length > 0 ? sizes.SizeAsync(baseRootfs) : Task.FromResult(0UL);

    /// <summary>Runs one named step: "NAME starting" (debug), then "NAME finished in N ms", or "NAME failed after N ms: why".</summary>
    public async Task<T> Step<T>(string name, Func<Task<T>> work)
    {
        if (BeforeStep is { } yield) await yield().ConfigureAwait(false);
        Log.Debug("{0} starting", name);
        var clock = Stopwatch.StartNew();
        try
        {
            var result = await work().ConfigureAwait(false);
            Log.Info("{0} finished in {1:0.0} ms", name, clock.Elapsed.TotalMilliseconds);
            return result;
        }
        catch (Exception e)
        {
            Log.Warning("{0} failed after {1:0.0} ms: {2}", name, clock.Elapsed.TotalMilliseconds, e.Message);
            throw;
        }
    }

    public Task Step(string name, Func<Task> work) => Step(name, async () =>
    {
        await work().ConfigureAwait(false);
        return true;
    });

    public Task Step(string name, Action work) => Step(name, () =>
    {
        work();
        return Task.CompletedTask;
    });
}

/// <summary>What a reconcile found of one container in the kernel.</summary>
public sealed record KernelFindings(bool RuntimeKnows, bool InitRunning, bool RootfsMounted, bool AgentAnswers, bool CgroupPresent,
    bool NetworkPresent = true)
{
    /// <summary>Nothing of it could be read (the reconcile itself failed).</summary>
    public static readonly KernelFindings Nothing = new(false, false, false, false, false, false);

    /// <summary>What a live container lacks, the first thing missing; null when it is whole.</summary>
    public string? Problem =>
        !RuntimeKnows ? "runc state vanished while gardend was down"
        : !InitRunning ? "container init gone (the agent died) while gardend was down"
        : !RootfsMounted ? "rootfs no longer mounted"
        : !CgroupPresent ? "cgroup gone"
        : !NetworkPresent ? "network namespace or veth gone"
        : !AgentAnswers ? "agent does not answer"
        : null;
}
