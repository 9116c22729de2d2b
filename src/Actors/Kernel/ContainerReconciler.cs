using Garden.Linux.Agent;
using Garden.Linux.Runtime;

namespace Garden.Actors.Kernel;

/// <summary>After a restart: what the kernel still holds of a container the journal says is live — runc's state and
/// its init, the agent, the rootfs, the cgroup, the network — and the firewall rules put back where they went missing
/// (a crash, an operator's flush). It changes nothing else: what the findings mean is decided by the container.</summary>
public sealed class ContainerReconciler(KernelContext k)
{
    public async Task<KernelFindings> ReconcileAsync(Effect.Reconcile r)
    {
        k.Fx.Runtime.Adopt(k.Name, k.Paths.Bundle);
        var state = await k.Fx.Runtime.StateAsync(k.Name, CancellationToken.None).ConfigureAwait(false);
        var running = state is { Status: OciStatus.Running };
        var agent = false;
        if (running)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await k.Agent.PingAsync(cts.Token).ConfigureAwait(false);
                agent = true;
            }
            catch (Exception e) when (e is OperationCanceledException or AgentUnavailableException or AgentException)
            {
            }
        }
        var network = true;
        if (k.Network(r.Network) is { } net)
        {
            network = k.Fx.Network.Exists(net);
            if (network && await k.Fx.Firewall.EnsureAsync(KernelContext.Firewall(net, r.NetIn, r.NetOut), CancellationToken.None).ConfigureAwait(false))
                k.Log.Warning("reconcile: its firewall rules were missing or incomplete; re-applied");
        }
        return new KernelFindings(state is not null, running, k.Fx.Rootfs.IsMounted(r.RootfsMount), agent, k.Fx.Cgroups.Exists(k.Name), network);
    }
}
