using Garden.Linux.Cgroups;

namespace Garden.Testing;

/// <summary>Where the tests look for a container's cgroup on the host, in the layout the product detects and uses
/// (<see cref="CgroupManager.Create"/>: cgroup v2's one tree when /sys/fs/cgroup holds cgroup.controllers, else v1's
/// hierarchy per controller), so a check of the kernel's files holds on either.</summary>
public static class HostCgroups
{
    public const string Root = "/sys/fs/cgroup";

    /// <summary>True on a cgroup v2 (unified) host, as the product decides it.</summary>
    public static bool Unified => CgroupManager.IsUnified(Root);

    /// <summary>The hierarchy a controller's files are in: v1 its own mount, v2 the one tree.</summary>
    public static string Hierarchy(string controller) => Unified ? Root : Path.Combine(Root, controller);

    /// <summary>The container's cgroup directory (or a path below it) where <paramref name="controller"/>'s files are.</summary>
    public static string Dir(string controller, string parent, string handle, params string[] below) =>
        Path.Combine([Hierarchy(controller), parent, handle, .. below]);

    /// <summary>The memory limit file: v1 memory.limit_in_bytes, v2 memory.max.</summary>
    public static string MemoryLimitFile => Unified ? "memory.max" : "memory.limit_in_bytes";

    /// <summary>Every directory of the container's cgroup that exists: in any v1 hierarchy (as runc makes them, one per
    /// mounted controller) or in the v2 tree. Empty: nothing of it is left.</summary>
    public static IReadOnlyList<string> Existing(string parent, string handle)
    {
        var hierarchies = Unified
            ? [Root]
            : Directory.GetDirectories(Root).Where(d => (new FileInfo(d).Attributes & FileAttributes.ReparsePoint) == 0);
        return [.. hierarchies.Select(h => Path.Combine(h, parent, handle)).Where(Directory.Exists)];
    }
}
