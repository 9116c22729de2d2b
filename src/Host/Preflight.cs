namespace Garden.Host;

/// <summary>What must hold before the actor system starts, in this order: the agent binary exists, the mount dir is
/// prepared, the state dir is closed (0700, secrets 0600), the socket's directory exists without a stale socket, and the
/// journal is readable; with Garden's id mapping, the kernel's per-uid key quota holds a keyring per container. Each failure is a <see cref="StartupFailure"/> naming what was wrong.</summary>
public static class Preflight
{
    public const int ExitJournalUnreadable = 3;

    /// <summary>Where the locks of network prefixes live (one host-wide namespace, as the prefixes are).</summary>
    public const string LockDir = "/run/garden-actors/locks";

    /// <summary>Locks this process holds until it exits (the kernel lets them go however it ends).</summary>
    private static readonly List<FileStream> Held = [];

    /// <summary>An exclusive lock (flock, which .NET takes for FileShare.None) on <paramref name="path"/>, held for the
    /// process's life; another live gardend holding it stops this one with a message naming <paramref name="what"/>.</summary>
    private static void TakeLock(string path, string what, string hint)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var lockFile = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            lock (Held) Held.Add(lockFile);
        }
        catch (IOException e) when (e is not (DirectoryNotFoundException or PathTooLongException))
        {
            throw new StartupFailure(1, $"{what} is in use by another gardend ({path} is locked): {hint}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new StartupFailure(1, $"cannot lock {path} ({what}): {e.Message}");
        }
    }

    public static void Run(GardendSettings settings)
    {
        var garden = settings.Garden;
        if (!File.Exists(garden.AgentBinary))
            throw new StartupFailure(1, $"agent binary {garden.AgentBinary} not found (run `make install`, or set garden.agent-binary)");
        // One gardend per state dir and per network prefix, before anything is changed: a second daemon on the same state
        // dir would write the same journal, and one on the same prefix prunes the first one's networks and chains at its
        // start as leftovers (and deletes its socket below).
        TakeLock(Path.Combine(garden.StateDir, "gardend.lock"), $"the state dir {garden.StateDir}", "give each gardend a state dir of its own");
        TakeLock(Path.Combine(LockDir, $"prefix-{garden.Network.Prefix}.lock"), $"the network prefix \"{garden.Network.Prefix}\"",
            "give each gardend on a host its own garden.network.prefix (it names every kernel object of the daemon)");
        // The mount dir first: when it sits in the socket's dir, that dir is made traversable (0711) rather than 0700.
        try
        {
            Garden.Linux.Rootfs.OverlayRootfs.PrepareMountDir(garden.MountDir);
        }
        catch (Exception e) when (e is Garden.Linux.Rootfs.RootfsException or IOException or UnauthorizedAccessException)
        {
            throw new StartupFailure(1, e.Message);
        }
        if (Garden.Linux.UserNamespaces.NamespaceOwners.HostUsersInBlock() is { Count: > 0 } owners)
            throw new StartupFailure(1, $"host user {string.Join(", ", owners)} has a uid among those that own containers' user " +
                $"namespaces ({Garden.Linux.UserNamespaces.NamespaceOwners.First}..{Garden.Linux.UserNamespaces.NamespaceOwners.First + Garden.Linux.UserNamespaces.NamespaceOwners.Count - 1}): " +
                "it would hold every capability in such a container; give it another uid");
        StateDir.Close(garden); // 0700, secrets 0600: before the journal is opened or any actor writes
        var socket = settings.Gateway.Socket;
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
            File.Delete(socket); // a socket left by a killed daemon blocks the bind
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupFailure(1, $"garden.gateway.socket {socket}: {e.Message}");
        }
        if (garden.UserNamespace.Mapping == Garden.Actors.UserNamespaceMode.Garden)
        {
            RaiseKeyQuota(garden.MaxContainers);
            LiftSharedUidLimits();
        }
        RaisePtyQuota(garden.MaxContainers);
        RaiseHostFloors(garden.MaxContainers);
        try
        {
            if (Garden.Linux.Runtime.PeaAgentBinary.Refresh(garden.AgentBinary, garden.PeaAgentBinary) is { } made)
                Console.Out.WriteLine($"gardend: {made}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupFailure(1, $"cannot copy the agent for peas to {garden.PeaAgentBinary}: {e.Message}");
        }
        try
        {
            JournalFile.Prepare(garden.JournalPath);
        }
        catch (InvalidDataException e)
        {
            throw new StartupFailure(ExitJournalUnreadable, e.Message);
        }
    }

    /// <summary>Every unprivileged container's root is one host uid under Garden's mapping, and runc charges each one's
    /// session keyring to it (<see cref="Garden.Linux.Host.KeyQuota"/>).</summary>
    private static void RaiseKeyQuota(int maxContainers) => Adjust(
        () => new Garden.Linux.Host.KeyQuota().EnsureFor(maxContainers),
        line => $"raised {line} (one runc session keyring per container, all charged to container root's host uid 4294967294)",
        why => $"cannot raise the kernel's key quota for {maxContainers} containers ({why}); " +
               "Creates beyond kernel.keys.maxkeys will fail with \"disk quota exceeded\"");

    /// <summary>Host-wide tables sized for one machine's processes, not for hundreds of containers, and gardend's standing
    /// with the OOM killer (<see cref="Garden.Linux.Host.HostFloors"/>, <see cref="Garden.Linux.Host.DaemonOomScore"/>).</summary>
    private static void RaiseHostFloors(int maxContainers)
    {
        Adjust(() => new Garden.Linux.Host.HostFloors().Raise(maxContainers),
            line => $"raised {line} (a host-wide table every container draws from)",
            why => $"cannot raise fs.file-max, kernel.pid_max or nf_conntrack_max ({why}); a few containers " +
                   "at their default limits could fill the host's file, pid or connection table for all");
        Adjust(() => One(Garden.Linux.Host.DaemonOomScore.Protect()),
            line => $"{line} (containers' processes go first when the host runs out of memory)",
            why => $"cannot lower its oom_score_adj ({why}; it needs CAP_SYS_RESOURCE): " +
                   "containers' processes (500) and agents (300) still go before it");
    }

    /// <summary>The ptys of every container's devpts count against one kernel limit (<see cref="Garden.Linux.Host.PtyQuota"/>):
    /// raised so that every container's share fits.</summary>
    private static void RaisePtyQuota(int maxContainers) => Adjust(
        () => One(new Garden.Linux.Host.PtyQuota().EnsureFor(maxContainers)),
        line => $"raised {line} (each container's devpts holds at most {Garden.Linux.Host.PtyQuota.PerContainer} ptys, all counted against it)",
        why => $"cannot raise the kernel's pty limit for {maxContainers} containers ({why}); " +
               "a few containers holding their share of ptys would leave the others none");

    /// <summary>The per-user limits that count by host uid alone, which every unprivileged container shares under Garden's
    /// mapping and any one could fill for all (<see cref="Garden.Linux.Host.SharedUidLimits"/>): lifted.</summary>
    private static void LiftSharedUidLimits() => Adjust(
        () => new Garden.Linux.Host.SharedUidLimits().Lift(),
        line => $"lifted {line}: every container's root is host uid 4294967294, and one container " +
                "could fill a limit shared by all; each container's memory limit bounds what it costs",
        why => $"cannot lift the kernel's per-uid pipe and epoll limits ({why}); one " +
               "container could fill them for all (smaller pipes, no new epoll watches in any container)");

    /// <summary>Changes kernel settings for the containers' sake and says each change ("gardend: " + <paramref name="said"/>).
    /// A host that refuses (a read-only /proc/sys, a capability withheld) does not stop gardend: it warns, saying what
    /// that costs (<paramref name="warning"/> of the error's message).</summary>
    private static void Adjust(Func<IEnumerable<string>> change, Func<string, string> said, Func<string, string> warning)
    {
        try
        {
            foreach (var line in change()) Console.Out.WriteLine($"gardend: {said(line)}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            Console.Error.WriteLine($"gardend: warning: {warning(e.Message)}");
        }
    }

    private static IEnumerable<string> One(string? line) => line is null ? [] : [line];
}
