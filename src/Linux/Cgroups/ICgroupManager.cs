namespace Garden.Linux.Cgroups;

/// <summary>The cgroups of containers. runc creates a container's cgroup from the path given here; this interface
/// names that path and releases what runc leaves (the shared parent once it is empty).</summary>
public interface ICgroupManager
{
    /// <summary>The absolute cgroup path (linux.cgroupsPath) of a container.</summary>
    string PathFor(string handle);

    /// <summary>The cgroup path of a child of the container's own cgroup (a pea's, which runc makes and removes), under
    /// the container's limits.</summary>
    string ChildPathFor(string handle, string child) => $"{PathFor(handle)}/{child}";

    /// <summary>Creates the cgroup the container's processes run in (the pids limit applies there, so the agent's own
    /// threads never count against it and a fork bomb cannot starve the agent) and returns its directory, for the agent
    /// to move each process it spawns into; null when no pids controller is mounted. Call before the runtime starts.
    /// <paramref name="delegateTo"/>: the agent runs as this unprivileged host uid (container root in a user namespace),
    /// so the cgroup.procs files it must write to move a process there are given to it (and nothing else: pids.max and
    /// every limit stay root's).</summary>
    string? PrepareProcessCgroup(string handle, CgroupOwner? delegateTo = null);

    /// <summary>cgroup v1 only (one hierarchy per controller): the processes' cgroup in the memory hierarchy, where the
    /// memory limit applies, which <see cref="PrepareProcessCgroup"/> makes beside the pids one; the agent moves each process
    /// into both. Null on v2 (one tree: the directory <see cref="PrepareProcessCgroup"/> returns) or without a memory
    /// controller.</summary>
    string? MemoryProcessCgroup(string handle) => null;

    /// <summary>Removes the container's cgroup wherever it is left, and the parent when no container uses it any more.</summary>
    void Release(string handle);

    /// <summary>True when the container's cgroup exists in any hierarchy.</summary>
    bool Exists(string handle);

    /// <summary>Writes the non-null limits straight to the cgroup files (microseconds; no tool is spawned).
    /// Throws <see cref="CgroupLimitException"/> naming the value when the kernel refuses one; limits written before
    /// the refused one are put back, so the container keeps its previous limits.</summary>
    void Apply(string handle, ResourceLimits limits);

    /// <summary>The limits the kernel holds now (not what was asked); null where unlimited.</summary>
    ResourceLimits Read(string handle);

    CgroupMetrics Metrics(string handle);
}

/// <summary>Host ids that may move processes into a container's process cgroup.</summary>
public readonly record struct CgroupOwner(uint Uid, uint Gid);

/// <summary>The kernel's OOM notification for one container's cgroup (v1: an eventfd on memory.oom_control; v2:
/// memory.events). Calls back once per OOM kill — not when the cgroup is removed.</summary>
public interface IOomNotifier
{
    /// <summary>Starts watching; dispose to stop (and before the cgroup is removed).</summary>
    IDisposable Watch(string handle, Action onOomKill);
}
