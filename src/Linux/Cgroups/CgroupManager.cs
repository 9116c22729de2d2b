using Garden.Linux.Interop;

namespace Garden.Linux.Cgroups;

/// <summary>Chooses the cgroup layout once: v1 (one hierarchy per controller) or v2 (one unified tree).
/// The rest of the code never branches on the version.</summary>
public static class CgroupManager
{
    public static ICgroupManager Create(string parent, string cgroupRoot = "/sys/fs/cgroup")
    {
        var unifiedOnly = File.Exists(Path.Combine(cgroupRoot, "cgroup.controllers"));
        return unifiedOnly
            ? new CgroupTree(parent, [cgroupRoot])
            : new CgroupTree(parent, V1Hierarchies(cgroupRoot));
    }

    private static IReadOnlyList<string> V1Hierarchies(string root) =>
        Directory.Exists(root)
            ? Directory.GetDirectories(root).Where(d => (new FileInfo(d).Attributes & FileAttributes.ReparsePoint) == 0).ToList()
            : [];
}

/// <summary>A container's cgroup is parent/handle in each hierarchy (v1: every mounted controller; v2: the unified tree).</summary>
internal sealed class CgroupTree(string parent, IReadOnlyList<string> hierarchies) : ICgroupManager
{
    public string PathFor(string handle) => $"/{parent}/{handle}";

    public void Release(string handle)
    {
        foreach (var h in hierarchies)
        {
            RemoveIfEmpty(Path.Combine(h, parent, handle));
            RemoveIfEmpty(Path.Combine(h, parent));
        }
    }

    public bool Exists(string handle) => hierarchies.Any(h => Directory.Exists(Path.Combine(h, parent, handle)));

    private static void RemoveIfEmpty(string dir)
    {
        try { Directory.Delete(dir); }
        catch (DirectoryNotFoundException) { }
        catch (IOException) { /* EBUSY / ENOTEMPTY: still in use */ }
    }
}
