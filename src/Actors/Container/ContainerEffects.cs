using System.Security.Cryptography;
using System.Text;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Disk;
using Garden.Linux.Host;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;

namespace Garden.Actors.Container;

/// <summary>The Linux effects a ContainerActor uses, each behind its own interface (given by the composition root).</summary>
public sealed record ContainerEffects(
    IOciRuntime Runtime,
    IRootfsProvider Rootfs,
    ICgroupManager Cgroups,
    IAgentConnector Agents,
    IDiskQuota Disk,
    IOomNotifier Oom,
    INetworkPlumbing Network,
    IFirewall Firewall,
    IUserNamespaces UserNamespaces,
    IDepot Depot,
    IBaseRootfsSizes? BaseSizes = null,
    IGardenMetrics? Metrics = null,
    Garden.Linux.Images.IImageStore? Images = null,
    IHostResources? Host = null, // resolves a pea's image path (null: taken as given, for fakes)
    IContainerHostname? Hostnames = null) // renames a container taken from the warm pool (null: no pool can be served)
{
    /// <summary>Where the actors report what happens (<see cref="NoMetrics"/> when the composition root gives none).</summary>
    public IGardenMetrics Metered => Metrics ?? NoMetrics.Instance;

    /// <summary>Completes when a container's kernel work may begin. After a restart the host starts its containers' actors
    /// (each reads its journal) while it still removes what an earlier gardend left on the host; their kernel work (the
    /// reconcile, an undo) waits for that.</summary>
    public Task KernelWorkAfter { get; init; } = Task.CompletedTask;

    /// <summary>The kernel work of the Creates in flight (shared by every copy made with <c>with</c>): a recovered
    /// actor's undo or reconcile waits for what its stopped predecessor started.</summary>
    public Kernel.CreatesInFlight Creates { get; init; } = new();
}

/// <summary>Where one container's files live on the host.</summary>
public sealed record ContainerPaths(string Depot, string Bundle, string AgentSocket, string AgentLog, string MountDir)
{
    /// <summary>Where its root is mounted (and where builds before user namespaces mounted it).</summary>
    public RootfsPaths Rootfs => new(MountDir, Depot);

    /// <summary>The container's /etc/hosts and /etc/resolv.conf, bind-mounted (writable by container root, as in Garden)
    /// from <paramref name="dir"/>: the container's disk when it has a disk limit (what it writes into them counts
    /// against it), else its depot, like the upper layer.</summary>
    public static (string Hosts, string Resolv) NameFiles(string dir) => (Path.Combine(dir, "hosts"), Path.Combine(dir, "resolv.conf"));

    public static ContainerPaths For(GardenSettings settings, string handle)
    {
        var depot = settings.DepotFor(handle);
        // A Unix socket path holds at most 107 bytes, so the socket is named by a hash of the handle.
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(handle)))[..16];
        return new ContainerPaths(depot, Path.Combine(depot, "bundle"),
            Path.Combine(settings.StateDir, "sockets", hash + ".sock"), Path.Combine(depot, "agent.log"), settings.MountDirFor(handle));
    }
}
