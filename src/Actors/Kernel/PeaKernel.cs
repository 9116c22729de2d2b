using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Garden.Actors.Container;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;

namespace Garden.Actors.Kernel;

/// <summary>The peas of one container: processes with a root filesystem of their own (Garden's ProcessSpec.Image).
///
/// <para>What a pea is here, and why: a second runc container whose init is the same garden-agent every container has
/// (started with <c>--pea</c>), which runs exactly one process, the Run's. It joins its container's user, pid, network,
/// ipc and uts namespaces by path (<c>/proc/INIT/ns/*</c>, the container's agent's), and makes only a mount namespace
/// of its own, with its root an overlay of the image directory exactly as a container's (idmapped for the container's
/// user namespace, its own read-write layer) and the container's /etc/hosts and /etc/resolv.conf bound in. It gets the
/// container's bundle in every other respect (<see cref="OciBundle"/>): the same capabilities, seccomp filter,
/// no_new_privs, masked and read-only paths, device rules — a pea is exactly as contained as its container, privileged
/// only when its container is. Being an agent of its own makes the pea's process an ordinary process for the rest of
/// gardend: spawn, stdio, TTY, signals, exit status and attach go through the same <see cref="IAgentClient"/> as any
/// process's, to the pea's agent's socket instead of the container's. Something lighter (the container's agent
/// entering a mount namespace for the process) is out of reach: the container's agent runs under the container's seccomp
/// filter and capabilities, which refuse setns, unshare and mount, as they must.</para>
///
/// <para>Limits: a pea that names no limits shares its container's — its agent moves its process into the container's
/// process cgroup (pids and memory limit), as it does for every process of the container. A pea with limits of its own
/// (Garden's OverrideContainerLimits, even empty) keeps its process in its own cgroup, which runc makes inside the
/// container's (so the container's outer memory limit, limit + agent allowance, still bounds it) with those limits;
/// the pea sees that cgroup at /sys/fs/cgroup.</para>
///
/// <para>Lifetime: a pea is released (its agent killed, runc's container deleted with its cgroup, its root unmounted,
/// its files removed) once its process has exited and its exit was seen (<see cref="Process.ProcessActor"/>), when its
/// container is destroyed (its process is KILLed first, so a client waiting for it gets 137), when its start fails, and
/// after a restart when its agent no longer answers. Its files: <c>depot/HANDLE/peas/ID</c> (bundle, and its read-write
/// layer unless its container has a disk limit: then that is on the container's disk, <c>depot/HANDLE/disk/peas/ID</c>, so
/// a pea fills its container's disk and never the host's; what a restart finds in <c>depot/HANDLE/peas</c> is the list
/// of peas), its root at <c>MOUNT-DIR/.peas/HANDLE/ID/rootfs</c>, its agent's socket beside the containers'. A pea with a
/// cgroup of its own is outside its container's pids limit: it gets <c>garden.default-limits.pids</c> unless it names one. Every step is idempotent and one pea's steps never run at once.</para></summary>
public sealed class PeaKernel(KernelContext k)
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _gates = new();
    private volatile bool _closed; // the container is being destroyed: no new pea

    /// <summary>Where one pea's files live.</summary>
    public sealed record PeaPaths(string Dir, string Bundle, string Socket, string AgentLog, RootfsPaths Rootfs, string RuntimeId);

    private string PeasDir => Path.Combine(k.Paths.Depot, "peas");

    /// <summary>Mount dirs of peas live outside the container's own (its teardown deletes that tree).</summary>
    private string MountDirOfContainer => Path.Combine(k.Settings.MountDir, ".peas", k.Name);

    public PeaPaths PathsOf(string id)
    {
        var dir = Path.Combine(PeasDir, id);
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(k.Name + "/" + id)))[..16];
        // '+' is in no handle or process id: a pea's runc id never names a container (and stays within NAME_MAX, for
        // runc's state dir and the cgroup named after it)
        var runtimeId = k.Name.Length + id.Length <= 200 ? $"{k.Name}+pea+{id}" : $"pea+{hash}";
        return new PeaPaths(dir, Path.Combine(dir, "bundle"), Path.Combine(Path.GetDirectoryName(k.Paths.AgentSocket)!, "pea-" + hash + ".sock"),
            Path.Combine(dir, "agent.log"), new RootfsPaths(Path.Combine(MountDirOfContainer, id), dir), runtimeId);
    }

    /// <summary>The ids of the peas whose files are on the host (after a restart: the peas an earlier gardend started).</summary>
    public IReadOnlyList<string> Existing()
    {
        try
        {
            return [.. Directory.GetDirectories(PeasDir).Select(Path.GetFileName).OfType<string>().Where(n => Names.Problem(n) is null)];
        }
        catch (DirectoryNotFoundException)
        {
            return [];
        }
    }

    public IAgentClient AgentOf(string id) => k.Fx.Agents.Connect(PathsOf(id).Socket);

    /// <summary>Makes the pea for <paramref name="process"/> of the container made from <paramref name="container"/> and
    /// returns its agent, ready for the spawn. On failure whatever was made is released again.</summary>
    public async Task<IAgentClient> CreateAsync(ProcessSpec process, ContainerSpec container)
    {
        var id = process.Id;
        var p = PathsOf(id);
        var gate = Gate(id);
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_closed)
                throw new GardenException(ErrorKind.FailedPrecondition, $"container {k.Handle} is being destroyed: process {id} was not started");
            if (Directory.Exists(p.Dir))
                throw new GardenException(ErrorKind.AlreadyExists, $"process {id} already exists in container {k.Handle}");
            var image = ResolveImage(process.Image);
            var init = await k.Fx.Runtime.StateAsync(k.Name, CancellationToken.None).ConfigureAwait(false);
            if (init is null || init.Status != OciStatus.Running || init.Pid <= 0)
                throw new GardenException(ErrorKind.FailedPrecondition, $"container {k.Handle} does not run: no pea can join it");
            var ns = $"/proc/{init.Pid}/ns/";
            try
            {
                Directory.CreateDirectory(PeasDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                Directory.CreateDirectory(p.Dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                var mapping = container.Privileged ? null : container.UserNamespace;
                var root = mapping is null ? null : new UserNamespaceRoot(ns + "user", mapping.RootUid, mapping.RootGid);
                // its read-write layer on its container's disk when that has a disk limit (outside the container's own
                // layer, which is the container's "/"): what a pea writes counts against it as the container's writes do
                var layer = LayerOnDisk(id);
                var rootfs = await k.Step($"pea {id}: rootfs {image}",
                    () => k.Fx.Rootfs.CreateAsync(p.RuntimeId, image, p.Rootfs, layer, root, CancellationToken.None)).ConfigureAwait(false);

                // the container's own /etc/hosts and /etc/resolv.conf (on its disk when it has a disk limit), the same files
                var nameDir = k.Fx.Disk.IsMounted(k.Paths.Depot) ? Path.Combine(k.Paths.Depot, "disk") : k.Paths.Depot;
                var (hosts, resolv) = ContainerPaths.NameFiles(nameDir);
                List<BindMountSpec> mounts = [];
                if (File.Exists(hosts)) mounts.Add(new BindMountSpec(hosts, "/etc/hosts", ReadOnly: false));
                if (File.Exists(resolv)) mounts.Add(new BindMountSpec(resolv, "/etc/resolv.conf", ReadOnly: false));

                // shared limits: the agent moves the process into the container's process cgroup; own: it stays in the pea's
                var own = process.PeaLimits;
                var processCgroup = own is null
                    ? k.Fx.Cgroups.PrepareProcessCgroup(k.Name, root is null ? null : new CgroupOwner(root.Uid, root.Gid))
                    : null;
                var memoryCgroup = own is null ? k.Fx.Cgroups.MemoryProcessCgroup(k.Name) : null;
                // the agent's unreadable copy: exec'd among the container's running processes, it is non-dumpable at once
                var bundle = new BundleSpec(p.RuntimeId, rootfs, k.Settings.PeaAgentBinary, p.Socket, p.AgentLog,
                    k.Fx.Cgroups.ChildPathFor(k.Name, p.RuntimeId), container.Privileged, [], processCgroup, NetnsPath: null, mounts,
                    mapping is null ? null : new BundleUserNamespace(ns + "user", mapping), memoryCgroup,
                    new BundleJoin(mapping is null ? null : ns + "user", ns + "net", ns + "ipc", ns + "pid", ns + "uts"),
                    own is null ? null : new BundleResources(own.MemoryBytes, own.CpuWeight,
                        // a cgroup of its own is outside the container's pids limit: it gets the daemon's default unless it names one
                        own.Pids > 0 ? own.Pids : k.Settings.DefaultLimits.Pids ?? 0));
                await k.Step($"pea {id}: runtime", () => k.Fx.Runtime.RunAsync(bundle, p.Bundle, CancellationToken.None)).ConfigureAwait(false);
                var agent = k.Fx.Agents.Connect(p.Socket);
                await k.Step($"pea {id}: agent", () => WaitForAgentAsync(agent, p)).ConfigureAwait(false);
                return agent;
            }
            catch (Exception failure)
            {
                try
                {
                    await ReleaseAsync(id, p, killFirst: false).ConfigureAwait(false);
                }
                catch (Exception teardown)
                {
                    k.Log.Error(teardown, "pea {0}: undoing its start failed: {1}", id, teardown.Message);
                }
                throw failure is RootfsException r ? GardenException.Invalid("image", r.Message) : failure is GardenException ? failure
                    : new GardenException(ErrorKind.Internal, $"process {id} (image {process.Image}) could not start: {failure.Message}", failure);
            }
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Releases one pea: KILLs its process first when <paramref name="killFirst"/> (its client gets 137), then
    /// its agent, runc's container and cgroup, its root and files. What is gone already counts as done.</summary>
    public async Task DestroyAsync(string id, bool killFirst)
    {
        var gate = Gate(id);
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            await ReleaseAsync(id, PathsOf(id), killFirst).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Every pea of the container (its Destroy, and a restart that finds the container gone); no pea starts after
    /// it. A pea whose start is in flight is waited for (its gate) and released too.</summary>
    public Task DestroyAllAsync()
    {
        _closed = true;
        return Task.WhenAll(Existing().Union(_gates.Keys).Select(id => DestroyAsync(id, killFirst: true)));
    }

    private async Task ReleaseAsync(string id, PeaPaths p, bool killFirst)
    {
        if (!Directory.Exists(p.Dir) && !k.Fx.Rootfs.IsMounted(p.Rootfs.MountPoint)) return;
        k.Log.Info("pea {0}: release starting", id);
        if (killFirst)
        {
            // through its agent, which reports the exit (137) to whoever waits for it
            var agent = AgentOf(id);
            try
            {
                await agent.SignalAllAsync(9, CancellationToken.None).ConfigureAwait(false);
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
                while (DateTime.UtcNow < deadline && (await agent.ListAsync(CancellationToken.None).ConfigureAwait(false)).Any(e => !e.Exited))
                    await Task.Delay(20).ConfigureAwait(false);
                // the exit is reported to the streams of the process before its agent goes
                await Task.Delay(100).ConfigureAwait(false);
            }
            catch (Exception e) when (e is AgentUnavailableException or AgentException)
            {
            }
        }
        if (Directory.Exists(p.Bundle)) k.Fx.Runtime.Adopt(p.RuntimeId, p.Bundle);
        await k.Fx.Runtime.KillAsync(p.RuntimeId, 9, all: false, CancellationToken.None).ConfigureAwait(false);
        if (!await k.Fx.Runtime.WaitStoppedAsync(p.RuntimeId, TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false))
            throw new GardenException(ErrorKind.Internal, $"pea {id} of {k.Handle}: its agent did not exit 10s after SIGKILL");
        await k.Fx.Runtime.DeleteAsync(p.RuntimeId, CancellationToken.None).ConfigureAwait(false);
        await k.Fx.Rootfs.DestroyAsync(p.RuntimeId, p.Rootfs, CancellationToken.None).ConfigureAwait(false);
        if (k.Fx.Rootfs.IsMounted(p.Rootfs.MountPoint))
            throw new GardenException(ErrorKind.Internal, $"pea {id} of {k.Handle}: its root is still mounted at {p.Rootfs.MountPoint}");
        try { File.Delete(p.Socket); } catch (IOException) { }
        OverlayRootfs.DeleteTree(p.Dir);
        if (LayerOnDisk(id) is { } layer) OverlayRootfs.DeleteTree(layer);
        foreach (var dir in new[] { MountDirOfContainer, PeasDir, Path.Combine(k.Paths.Depot, "disk", "peas") })
        {
            try { Directory.Delete(dir); } catch (IOException) { } // not empty (another pea) or gone
        }
        k.Log.Info("pea {0}: release finished", id);
    }

    /// <summary>The image: an existing directory on the host, resolved (its symlinks followed: the path checked is the path
    /// mounted), that neither is nor holds nor lies inside what only gardend may use (its state dir with the journal, its
    /// mount dir, its API socket): an image of "/" would give the pea the daemon's journal to read.</summary>
    private string ResolveImage(string image)
    {
        var host = k.Fx.Host;
        var resolved = host is null ? image : host.ResolvePath(image);
        var hostOnly = k.Settings.ResolvedHostOnlyPaths(h => host?.ResolvePath(h));
        if (PeaImage.Problem(image, resolved, hostOnly) is { } problem) throw problem;
        return resolved!;
    }

    private async Task WaitForAgentAsync(IAgentClient agent, PeaPaths p)
    {
        using var cts = new CancellationTokenSource(k.Settings.AgentStartTimeout);
        while (true)
        {
            try
            {
                await agent.PingAsync(cts.Token).ConfigureAwait(false);
                return;
            }
            catch (AgentUnavailableException u) when (u.TimedOut && !cts.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is OperationCanceledException or AgentUnavailableException)
            {
                var lines = k.Fx.Depot.StartupErrors(p.Bundle).TakeLast(3).ToList();
                throw new GardenException(ErrorKind.Internal,
                    $"the pea's agent did not answer within {k.Settings.AgentStartTimeout.TotalSeconds:0.#}s: {e.Message}" +
                    (lines.Count == 0 ? "" : $" ({string.Join("; ", lines)})"), e);
            }
        }
    }

    /// <summary>Where a pea's read-write layer lives when its container has a disk limit (its disk is mounted at
    /// depot/disk), else null (in the pea's own dir in the depot, as the container's own layer then).</summary>
    private string? LayerOnDisk(string id) =>
        k.Fx.Disk.IsMounted(k.Paths.Depot) ? Path.Combine(k.Paths.Depot, "disk", "peas", id) : null;

    private SemaphoreSlim Gate(string id) => _gates.GetOrAdd(id, _ => new SemaphoreSlim(1, 1));
}
