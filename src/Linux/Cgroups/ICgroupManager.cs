namespace Garden.Linux.Cgroups;

/// <summary>The cgroups of containers. runc creates a container's cgroup from the path given here; this interface
/// names that path and releases what runc leaves (the shared parent once it is empty).</summary>
public interface ICgroupManager
{
    /// <summary>The absolute cgroup path (linux.cgroupsPath) of a container.</summary>
    string PathFor(string handle);

    /// <summary>Removes the container's cgroup wherever it is left, and the parent when no container uses it any more.</summary>
    void Release(string handle);

    /// <summary>True when the container's cgroup exists in any hierarchy.</summary>
    bool Exists(string handle);
}
