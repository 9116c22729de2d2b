using Garden.Actors.Container;
using Garden.Linux.Agent;
using Garden.Linux.Rootfs;

namespace Garden.Actors.Kernel;

/// <summary>The one teardown of a container, used by Destroy, by a Create that failed (to undo what it made) and by a
/// restarted daemon finishing a Create or a Destroy an earlier one was in the middle of. Every step is idempotent —
/// what is gone already counts as done — so it may run on a container of which anything, or nothing, was made.</summary>
public sealed class ContainerDestroyer(KernelContext k)
{
    /// <summary>The container's peas, which its teardown releases first.</summary>
    public PeaKernel Peas { get; } = new(k);

    /// <summary>Stops the container (<see cref="StopAsync"/>), then releases everything it held (<see cref="ReleaseAsync"/>).</summary>
    /// <param name="graceful">TERM the container's processes and give them the destroy grace first; else the
    /// runtime's KILL ends them (nothing is asked of an agent that may not be there).</param>
    /// <param name="network">the container's place on the network, if it has one</param>
    /// <param name="agentLog">the follower of its agent's log: closed once the agent is gone and its last lines are in</param>
    public async Task DestroyAsync(bool graceful, NetworkAllocation? network, IAsyncDisposable? agentLog = null)
    {
        if (!await StopAsync(graceful, agentLog).ConfigureAwait(false)) return;
        await ReleaseAsync(network).ConfigureAwait(false);
    }

    /// <summary>What a Destroy answers after: the container's processes are dead, the runtime has deleted it and its
    /// cgroup is gone, so nothing can run in it any more and its name is free in the runtime. What is left of it (its
    /// rootfs, disk, depot, firewall rules and network) is <see cref="ReleaseAsync"/>'s. False: the handle is not a valid
    /// name, so nothing of it exists on the host.</summary>
    public async Task<bool> StopAsync(bool graceful, IAsyncDisposable? agentLog = null)
    {
        if (Names.Problem(k.Name) is not null && !Garden.Actors.Host.HostState.IsPoolName(k.Name))
        {
            // No build ever made anything on the host under a handle that is not a valid name (the actor that would
            // have done it could not be started), and such a name must never reach runc or a path: nothing to release.
            k.Log.Warning("destroy: the handle is not a valid name; nothing of it exists on the host");
            if (agentLog is not null) await agentLog.DisposeAsync().ConfigureAwait(false);
            return false;
        }
        // Its peas first: each one's process is KILLed through its own agent, which reports 137 to whoever waits (Garden's),
        // before the container's agent would kill their agents with everything else in the pid namespace.
        await k.Step("peas removal", Peas.DestroyAllAsync).ConfigureAwait(false);
        if (graceful) await k.Step("processes", () => ProcessStopper.StopAllAsync(k.Agent, k.Settings.DestroyGrace)).ConfigureAwait(false);
        else k.Fx.Runtime.Adopt(k.Name, k.Paths.Bundle);
        try
        {
            await k.Step("runtime removal", RemoveFromRuntimeAsync).ConfigureAwait(false);
        }
        finally
        {
            // the agent is gone and its last lines are in: no more writes into the depot
            if (agentLog is not null) await agentLog.DisposeAsync().ConfigureAwait(false);
        }
        k.Settings.Faults.Hit("destroy-runtime");
        return true;
    }

    /// <summary>Releases what a stopped container (<see cref="StopAsync"/>) still holds: its rootfs, disk and image
    /// layers, its firewall rules and network (in parallel), then its depot. Idempotent: the host runs it after every
    /// container that is gone, and again after a restart for each release its journal says is pending.</summary>
    public async Task ReleaseAsync(NetworkAllocation? network)
    {
        if (Names.Problem(k.Name) is not null && !Garden.Actors.Host.HostState.IsPoolName(k.Name)) return; // nothing of it exists on the host (see StopAsync)
        // a container taken from the warm pool: the path by its handle goes first (a Create of the handle waits for this release)
        if (k.Name != k.Handle && Names.Problem(k.Handle) is null) k.Fx.Depot.RemoveAlias(k.Settings.MountDirFor(k.Handle));
        // Nothing runs in the container any more: its firewall rules, network and filesystems go in parallel.
        List<Task> releases =
        [
            Task.Run(() => k.Step("rootfs removal", async () =>
            {
                await k.Fx.Rootfs.DestroyAsync(k.Name, k.Paths.Rootfs, CancellationToken.None).ConfigureAwait(false);
                await k.Fx.Disk.DestroyAsync(k.Name, k.Paths.Depot, CancellationToken.None).ConfigureAwait(false);
                // its root is unmounted: the image's layers are no longer its
                if (k.Fx.Images is { } images) await images.ReleaseAsync(k.Name, CancellationToken.None).ConfigureAwait(false);
            })),
        ];
        if (k.Network(network) is { } net)
        {
            releases.Add(Task.Run(() => k.Step("firewall removal", () => k.Fx.Firewall.RemoveAsync(net, CancellationToken.None))));
            releases.Add(Task.Run(() => k.Step("network removal", () => k.Fx.Network.TearDownAsync(net, CancellationToken.None))));
        }
        await Task.WhenAll(releases).ConfigureAwait(false);
        await k.Step("depot removal", DeleteDepot).ConfigureAwait(false);
    }

    private async Task RemoveFromRuntimeAsync()
    {
        await k.Fx.Runtime.KillAsync(k.Name, 9, all: false, CancellationToken.None).ConfigureAwait(false);
        if (!await k.Fx.Runtime.WaitStoppedAsync(k.Name, TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false))
            throw new GardenException(ErrorKind.Internal, $"container {k.Handle}: init did not exit 10s after SIGKILL");
        await k.Fx.Runtime.DeleteAsync(k.Name, CancellationToken.None).ConfigureAwait(false);
        k.Fx.Cgroups.Release(k.Name);
    }

    private void DeleteDepot()
    {
        // Never recurse into a root that is still mounted.
        if (k.Fx.Rootfs.IsMounted(k.Paths.Rootfs.MountPoint) || k.Fx.Rootfs.IsMounted(k.Paths.Rootfs.LegacyMountPoint)
            || k.Fx.Disk.IsMounted(k.Paths.Depot))
            throw new GardenException(ErrorKind.Internal, $"container {k.Handle}: rootfs or disk still mounted, depot kept");
        k.Fx.Depot.Delete(k.Paths.Depot, k.Paths.AgentSocket);
    }
}

/// <summary>Ends the processes of a container through its agent.</summary>
public static class ProcessStopper
{
    /// <summary>TERM every process in the container (ours and whatever they started); once ours have exited or the
    /// grace time is over, KILL whatever is left. An agent that is not there runs nothing for us: the runtime's KILL
    /// ends the rest.</summary>
    public static async Task StopAllAsync(IAgentClient agent, TimeSpan grace)
    {
        try
        {
            if (grace > TimeSpan.Zero && (await agent.ListAsync(CancellationToken.None).ConfigureAwait(false)).Any(p => !p.Exited))
            {
                await agent.SignalAllAsync(15, CancellationToken.None).ConfigureAwait(false);
                await AllExitedAsync(agent, grace).ConfigureAwait(false);
            }
            await agent.SignalAllAsync(9, CancellationToken.None).ConfigureAwait(false);
            await AllExitedAsync(agent, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (AgentUnavailableException)
        {
        }
    }

    private static async Task<bool> AllExitedAsync(IAgentClient agent, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if ((await agent.ListAsync(CancellationToken.None).ConfigureAwait(false)).All(p => p.Exited)) return true;
            }
            catch (AgentUnavailableException)
            {
                return true;
            }
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(20).ConfigureAwait(false);
        }
    }
}
