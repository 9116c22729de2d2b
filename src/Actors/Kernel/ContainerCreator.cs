using Garden.Actors.Container;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Images;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;

namespace Garden.Actors.Kernel;

/// <summary>Makes a container, in order: its depot; its user namespace (held until runc has joined it: the network,
/// the idmapped rootfs and runc all need it); its disk; its network's links, then its firewall rules and bandwidth, while
/// its rootfs mounts and runc starts it (runc joins the holder's network namespace; a privileged container's runc waits
/// for the links, whose step makes its namespace; no process of the user runs before Create returns); its limits; and
/// then waits for its agent. When any step fails, the steps still in flight are awaited and the one
/// <see cref="ContainerDestroyer"/> releases whatever was made (guardian's gardener.Create with its deferred destroy).</summary>
public sealed class ContainerCreator(KernelContext k, ContainerDestroyer destroyer)
{
    /// <summary>Returns where the root is mounted, once its agent answers. On failure throws what failed (a
    /// <see cref="CreateUndoFailedException"/> when the teardown failed too).</summary>
    public async Task<CreatedRoot> CreateAsync(ContainerSpec spec)
    {
        var (root, settled) = await BeginAsync(spec).ConfigureAwait(false);
        await settled.ConfigureAwait(false);
        return root;
    }

    /// <summary>Makes the container up to runc's start and its limits, and returns where its root is mounted with the
    /// rest still under way: <c>Settled</c> completes once its agent answers and the steps beside (firewall, the
    /// holder's end) are done, or fails, after the whole container was undone, with what failed. The container actor
    /// journals CreateCompleted while the agent boots (the two took ~1 ms and ~2 ms one after the other) and answers the
    /// Create after both.</summary>
    public async Task<(CreatedRoot Root, Task Settled)> BeginAsync(ContainerSpec spec)
    {
        var ct = CancellationToken.None;
        var fx = k.Fx;
        var inFlight = new List<Task>();
        IUserNamespaceHolder? userns = null;
        var net = k.Network(spec.Network);
        try
        {
            await k.Step("depot", () => fx.Depot.Create(k.Paths.Depot, Path.GetDirectoryName(k.Paths.AgentSocket)!)).ConfigureAwait(false);
            // The cgroup the agent moves processes into (its owner is the mapping's root, known before the namespace is):
            // made beside the user namespace and the rootfs rather than after them (mkdirs in the v1 hierarchies).
            var processCgroupMade = Task.Run(() => k.Step("process cgroup", () => Task.FromResult(fx.Cgroups.PrepareProcessCgroup(k.Name,
                spec.UserNamespace is { } owner ? new CgroupOwner(owner.RootUid, owner.RootGid) : null))));
            inFlight.Add(processCgroupMade);
            if (spec.UserNamespace is { } mapping)
            {
                userns = await k.Step($"user namespace {mapping}", () => fx.UserNamespaces.CreateAsync(k.Name, mapping, ct)).ConfigureAwait(false);
                k.Log.Debug("user namespace held by pid {0}, owned by host uid {1}", userns.Pid, userns.Owner);
            }
            var root = userns is null ? null : new UserNamespaceRoot(userns.UserNamespacePath, userns.Mapping.RootUid, userns.Mapping.RootGid);
            // an image's layers come first (before the disk: a total-scope limit counts them)
            RootfsLayers lower = spec.Rootfs;
            PulledImage? image = null;
            if (ImageReference.IsImage(spec.Rootfs))
            {
                var images = fx.Images ?? throw new GardenException(ErrorKind.FailedPrecondition, "this gardend has no image store");
                var reference = ImageReference.Parse(spec.Rootfs);
                image = await k.Step($"image {reference}", () => images.PullAsync(k.Name, reference, ct)).ConfigureAwait(false);
                k.Settings.Faults.Hit("create-image");
                lower = new RootfsLayers(image.LayerDirs, FromImage: true);
            }
            var asked = spec.LimitsOrNone;
            // a total-scope limit leaves the container's disk what its image (the base rootfs) does not take
            var layer = asked.DiskBytes is { } disk
                ? await k.Step("disk", async () => await fx.Disk.CreateAsync(k.Name, k.Paths.Depot,
                    asked.DiskRoom(disk, asked.DiskScope == DiskScope.Total ? await k.ImageBytesAsync(spec.Rootfs).ConfigureAwait(false) : 0), ct).ConfigureAwait(false)).ConfigureAwait(false)
                : null;

            List<BindMountSpec> mounts = [];
            var networkUp = Task.CompletedTask;
            var namesWritten = Task.CompletedTask;
            if (net is not null)
            {
                // Container root may rewrite them (Garden's rule; they are its own, 0644), so they live where its writes
                // are counted: on its disk when it has a disk limit.
                var (hosts, resolv) = ContainerPaths.NameFiles(layer ?? k.Paths.Depot);
                var names = new NameFiles(hosts, resolv, OciBundle.Hostname(k.Name), k.Settings.Network.DnsServers, root);
                mounts.Add(new BindMountSpec(names.HostsPath, "/etc/hosts", ReadOnly: false));
                mounts.Add(new BindMountSpec(names.ResolvPath, "/etc/resolv.conf", ReadOnly: false));
                var netnsOf = userns?.Pid;
                // runc bind-mounts the name files: they are written before it starts
                namesWritten = Task.Run(() => fx.Network.WriteNameFilesAsync(net, names, ct));
                inFlight.Add(namesWritten);
                // the links, and then the firewall rules and bandwidth, while the rootfs mounts and (unprivileged) runc
                // starts: no process of the user runs before Create returns, which waits for them
                networkUp = Task.Run(() => k.Step("network", () => fx.Network.SetUpAsync(net, ct, netnsOf)));
                inFlight.Add(networkUp);
            }

            var rootfs = await k.Step(root is null ? "rootfs" : "rootfs (idmapped base)",
                () => fx.Rootfs.CreateAsync(k.Name, lower, k.Paths.Rootfs, layer, root, ct)).ConfigureAwait(false);
            k.Settings.Faults.Hit("create-rootfs");
            await namesWritten.ConfigureAwait(false);

            var firewallUp = Task.CompletedTask;
            if (net is not null)
            {
                var bandwidth = spec.LimitsOrNone.ToBandwidth();
                var links = networkUp;
                firewallUp = Task.Run(async () =>
                {
                    await links.ConfigureAwait(false);
                    k.Settings.Faults.Hit("create-network");
                    await k.Step("firewall", async () =>
                    {
                        await fx.Firewall.ApplyAsync(KernelContext.Firewall(net, spec.NetInOrEmpty, spec.NetOutOrEmpty), ct).ConfigureAwait(false);
                        if (bandwidth is { } b) await fx.Network.SetBandwidthAsync(net, b, ct).ConfigureAwait(false);
                    }).ConfigureAwait(false);
                });
                inFlight.Add(firewallUp);
                // Unprivileged: the network namespace is the user namespace holder's, which runc joins through the holder
                // (alive until runc has joined), so runc need not wait for the links. Privileged: `ip netns add` makes it.
                if (userns is null) await networkUp.ConfigureAwait(false);
            }

            // The caller's mounts (validated by the host) go after the container's own: one over /etc brings its own hosts file.
            mounts.AddRange(spec.BindMountsOrEmpty.Select(b => new BindMountSpec(b.Source, b.NormalDestination, b.ReadOnly)));
            var processCgroup = await processCgroupMade.ConfigureAwait(false);
            var bundle = new BundleSpec(k.Name, rootfs, k.Settings.AgentBinary, k.Paths.AgentSocket, k.Paths.AgentLog,
                fx.Cgroups.PathFor(k.Name), spec.Privileged, spec.Env, processCgroup,
                net is null ? null : userns is null ? net.NetnsPath : $"/proc/{userns.Pid}/ns/net", mounts,
                userns is null ? null : new BundleUserNamespace(userns.UserNamespacePath, userns.Mapping),
                fx.Cgroups.MemoryProcessCgroup(k.Name));
            await k.Step("runtime", () => fx.Runtime.RunAsync(bundle, k.Paths.Bundle, ct)).ConfigureAwait(false);
            // the network namespace is bound at its path (`ip netns attach` of the holder) before the holder goes
            await networkUp.ConfigureAwait(false);
            // runc has joined the namespaces: the container, its mounts and the bound netns keep them from now on. The holder
            // ends beside the last steps (awaited before the answer, or by a failure's teardown through inFlight).
            var holderGone = Task.CompletedTask;
            if (userns is not null)
            {
                holderGone = userns.DisposeAsync().AsTask();
                inFlight.Add(holderGone);
                userns = null;
            }
            k.Settings.Faults.Hit("create-runtime");
            // runc made the cgroup; the limits go straight into its files before any process of the user runs.
            var limits = spec.LimitsOrNone.ToCgroup();
            if (!limits.Equals(ResourceLimits.None)) await k.Step("limits", () => fx.Cgroups.Apply(k.Name, limits)).ConfigureAwait(false);
            var made = new CreatedRoot(rootfs, image is null ? null
                : new ContainerImage(image.Reference, image.ManifestDigest, image.Config.Env, image.Config.WorkingDir, image.Config.User,
                    image.Config.Entrypoint, image.Config.Cmd));
            return (made, SettleAsync(spec, inFlight));
        }
        catch (Exception failure)
        {
            await UndoAsync(failure, spec, inFlight, userns).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The rest of a Create after runc started it: its agent answers, the steps beside it are done (the holder's
    /// end among <paramref name="inFlight"/>). On failure the whole container is undone first.</summary>
    private async Task SettleAsync(ContainerSpec spec, List<Task> inFlight)
    {
        try
        {
            await k.Step("agent", WaitForAgentAsync).ConfigureAwait(false);
            await Task.WhenAll(inFlight).ConfigureAwait(false);
        }
        catch (Exception failure)
        {
            await UndoAsync(failure, spec, inFlight, userns: null).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Releases whatever of a failed Create was made; throws <see cref="CreateUndoFailedException"/> when that
    /// fails too (the caller rethrows the failure otherwise).</summary>
    private async Task UndoAsync(Exception failure, ContainerSpec spec, List<Task> inFlight, IUserNamespaceHolder? userns)
    {
        // Steps still running beside the one that failed finish first: tearing down under them would race.
        try { await Task.WhenAll(inFlight).ConfigureAwait(false); } catch { /* released below like the rest */ }
        try
        {
            if (userns is not null) await userns.DisposeAsync().ConfigureAwait(false);
            await destroyer.DestroyAsync(graceful: false, spec.Network).ConfigureAwait(false);
        }
        catch (Exception teardown)
        {
            k.Log.Error(teardown, "create: undoing it failed: {0}", teardown.Message);
            throw new CreateUndoFailedException(failure, teardown);
        }
    }

    /// <summary>Takes the warm pool entry this container was given (<see cref="KernelContext.Name"/>), made ahead by
    /// <see cref="CreateAsync"/> with the default shape: applies what differs per Create — its hostname (the handle, as
    /// Garden sets it) and /etc/hosts, its limits, its firewall rules — and checks that its agent answers. On failure the
    /// entry is destroyed like any half-made container.</summary>
    public async Task<CreatedRoot> TakeAsync(ContainerSpec spec)
    {
        var ct = CancellationToken.None;
        var fx = k.Fx;
        try
        {
            k.Log.Info("taking warm pool entry {0}", k.Name);
            var hostnames = fx.Hostnames ?? throw new GardenException(ErrorKind.Internal, "this gardend cannot rename a pooled container");
            var hostname = OciBundle.Hostname(k.Handle);
            var init = await fx.Runtime.StateAsync(k.Name, ct).ConfigureAwait(false);
            if (init is not { Status: OciStatus.Running, Pid: > 0 })
            {
                // it died while pooled: what is left of it goes, and the container is made the normal way under the same
                // name, network and ids (CreateAsync undoes itself if it fails); then renamed below like any entry
                k.Log.Warning("warm pool entry {0} no longer runs: removing it and making the container anew", k.Name);
                await destroyer.DestroyAsync(graceful: false, spec.Network).ConfigureAwait(false);
                await CreateAsync(spec).ConfigureAwait(false);
                init = await fx.Runtime.StateAsync(k.Name, ct).ConfigureAwait(false);
                if (init is not { Status: OciStatus.Running, Pid: > 0 })
                    throw new GardenException(ErrorKind.Internal, $"container {k.Handle} ({k.Name}) does not run after it was made anew");
            }
            await k.Step("hostname", () => hostnames.SetAsync(init.Pid, hostname)).ConfigureAwait(false);
            k.Settings.Faults.Hit("create-take");
            if (k.Network(spec.Network) is { } net)
            {
                // written in place: the files runc bind-mounted keep their inode (and their owner, container root)
                var (hosts, resolv) = ContainerPaths.NameFiles(k.Paths.Depot);
                await fx.Network.WriteNameFilesAsync(net, new NameFiles(hosts, resolv, hostname, k.Settings.Network.DnsServers, Owner: null), ct)
                    .ConfigureAwait(false);
                if (!spec.NetInOrEmpty.IsEmpty || !spec.NetOutOrEmpty.IsEmpty)
                    await k.Step("firewall", () => fx.Firewall.ApplyAsync(KernelContext.Firewall(net, spec.NetInOrEmpty, spec.NetOutOrEmpty), ct))
                        .ConfigureAwait(false);
            }
            var limits = spec.LimitsOrNone.ToCgroup();
            if (!limits.Equals(ResourceLimits.None)) await k.Step("limits", () => fx.Cgroups.Apply(k.Name, limits)).ConfigureAwait(false);
            await k.Step("agent", WaitForAgentAsync).ConfigureAwait(false);
            // found by its handle, as any container is (<mount-dir>/<handle>/rootfs: what Info shows), until released
            if (k.Name != k.Handle) fx.Depot.Alias(k.Settings.MountDirFor(k.Handle), k.Name);
            return new CreatedRoot(k.Paths.Rootfs.MountPoint, null);
        }
        catch (Exception failure)
        {
            try
            {
                await destroyer.DestroyAsync(graceful: false, spec.Network).ConfigureAwait(false);
            }
            catch (Exception teardown)
            {
                k.Log.Error(teardown, "take: undoing it failed: {0}", teardown.Message);
                throw new CreateUndoFailedException(failure, teardown);
            }
            throw;
        }
    }

    /// <summary>Asks the agent until it answers or the start's timeout is up (a call's deadline is shorter than a slow first start).</summary>
    private async Task WaitForAgentAsync()
    {
        using var cts = new CancellationTokenSource(k.Settings.AgentStartTimeout);
        while (true)
        {
            try
            {
                await k.Agent.PingAsync(cts.Token).ConfigureAwait(false);
                return;
            }
            catch (AgentUnavailableException u) when (u.TimedOut && !cts.IsCancellationRequested)
            {
            }
            catch (Exception e) when (e is OperationCanceledException or AgentUnavailableException)
            {
                // what the agent said before it gave up went to its stderr, runc's log
                throw new GardenException(ErrorKind.Internal,
                    $"the container's agent did not answer within {k.Settings.AgentStartTimeout.TotalSeconds:0.#}s: {e.Message}{AgentStartupErrors()}", e);
            }
        }
    }

    /// <summary>The last lines the agent wrote to its stderr (runc's log) before it pointed it at /dev/null: why it did not start.</summary>
    private string AgentStartupErrors()
    {
        var lines = k.Fx.Depot.StartupErrors(k.Paths.Bundle)
            .Where(l => l.StartsWith("garden-agent:", StringComparison.Ordinal)).TakeLast(3).ToList();
        return lines.Count == 0 ? "" : $" ({string.Join("; ", lines)})";
    }
}

/// <summary>What a Create made: where the root is mounted, and the image it came from (null: a directory). With
/// <see cref="Settling"/> its agent's start is still under way (<see cref="Effect.SettleCreate"/> waits for it).</summary>
public sealed record CreatedRoot(string Mount, ContainerImage? Image)
{
    public bool Settling { get; init; }
}
