using Garden.Linux.Cgroups.V1;
using Garden.Linux.Interop;
using Garden.Linux.Cgroups.V2;

namespace Garden.Linux.Cgroups;

/// <summary>Chooses the cgroup layout once: v1 (one hierarchy per controller) or v2 (one unified tree).
/// The rest of the code never branches on the version.</summary>
public static class CgroupManager
{
    /// <summary>The agent's share of a container's memory by default (garden.agent-memory-allowance): the agent is about
    /// 6 MiB resident; the container's cgroup gets the memory limit asked plus this.</summary>
    public const ulong DefaultAgentMemoryAllowance = 32UL << 20;

    public static ICgroupManager Create(string parent, string cgroupRoot = "/sys/fs/cgroup",
        ulong agentMemoryAllowance = DefaultAgentMemoryAllowance) =>
        IsUnified(cgroupRoot)
            ? new CgroupTree(parent, [cgroupRoot], V2Pieces(parent, cgroupRoot, agentMemoryAllowance), unified: true)
            : new CgroupTree(parent, V1Hierarchies(cgroupRoot), V1Pieces(parent, cgroupRoot, agentMemoryAllowance), unified: false);

    internal static bool IsUnified(string cgroupRoot) => File.Exists(Path.Combine(cgroupRoot, "cgroup.controllers"));

    private static IReadOnlyList<string> V1Hierarchies(string root) =>
        Directory.Exists(root)
            ? Directory.GetDirectories(root).Where(d => (new FileInfo(d).Attributes & FileAttributes.ReparsePoint) == 0).ToList()
            : [];

    /// <summary>v1: one piece per mounted controller hierarchy (a comounted "cpu,cpuacct" is reached through its
    /// "cpu" and "cpuacct" links).</summary>
    private static IReadOnlyList<ControllerPiece> V1Pieces(string parent, string root, ulong allowance)
    {
        var pieces = new List<ControllerPiece>();
        void Add(string controller, Func<string, string, ControllerPiece> make)
        {
            var h = Path.Combine(root, controller);
            if (Directory.Exists(h)) pieces.Add(make(h, parent));
        }
        // Memory last: it is the limit the kernel most often refuses, and everything before it is put back then.
        Add("cpu", (h, p) => new CpuV1(h, p));
        Add("cpuacct", (h, p) => new CpuacctV1(h, p));
        Add("pids", (h, p) => new Pids(h, p));
        Add("memory", (h, p) => new MemoryV1(h, p, allowance));
        return pieces;
    }

    /// <summary>v2: one piece per controller file set, for the controllers the tree offers.</summary>
    private static IReadOnlyList<ControllerPiece> V2Pieces(string parent, string root, ulong allowance)
    {
        var offered = File.ReadAllText(Path.Combine(root, "cgroup.controllers"))
            .Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        var pieces = new List<ControllerPiece>();
        if (offered.Contains("cpu")) pieces.Add(new CpuV2(root, parent));
        if (offered.Contains("pids")) pieces.Add(new Pids(root, parent, CgroupTree.InitDir));
        if (offered.Contains("memory")) pieces.Add(new MemoryV2(root, parent, allowance));
        return pieces;
    }
}

/// <summary>A container's cgroup is parent/handle in each hierarchy (v1: every mounted controller; v2: the unified tree);
/// limits and metrics are the sum of the controller pieces. The container's processes (not its agent) run in the child
/// <see cref="ProcessDir"/>, where the pids limit and the memory limit apply (the container's own cgroup, agent included,
/// gets the memory limit plus the agent's allowance). On v1 the agent stays in parent/handle itself; on v2 a cgroup
/// with enabled controllers may hold no processes, so there the agent runs in the leaf <see cref="InitDir"/>.</summary>
internal sealed class CgroupTree(string parent, IReadOnlyList<string> hierarchies, IReadOnlyList<ControllerPiece> pieces, bool unified)
    : ICgroupManager
{
    public const string ProcessDir = "work", InitDir = "init";

    public string PathFor(string handle) => unified ? $"/{parent}/{handle}/{InitDir}" : $"/{parent}/{handle}";

    // beside init on v2 (a cgroup with processes has no children there)
    public string ChildPathFor(string handle, string child) => $"/{parent}/{handle}/{child}";

    public string? PrepareProcessCgroup(string handle, CgroupOwner? delegateTo = null)
    {
        var pids = pieces.OfType<Pids>().FirstOrDefault();
        if (pids is null) return null;
        var work = Path.Combine(pids.Dir(handle), ProcessDir);
        if (unified)
        {
            // The pids (and memory) controllers must be enabled down to the container's cgroup for its child to have
            // pids.max (and memory.max).
            var enable = pieces.Any(p => p is MemoryV2) ? "+pids +memory" : "+pids";
            Directory.CreateDirectory(pids.Dir(handle));
            var root = hierarchies[0];
            var dir = root;
            foreach (var part in new[] { parent, handle })
            {
                File.AppendAllText(Path.Combine(dir, "cgroup.subtree_control"), enable);
                dir = Path.Combine(dir, part);
            }
            File.AppendAllText(Path.Combine(dir, "cgroup.subtree_control"), enable);
        }
        Directory.CreateDirectory(work);
        var memoryWork = MemoryWork(handle);
        if (memoryWork is not null) Directory.CreateDirectory(memoryWork);
        if (delegateTo is { } owner)
        {
            foreach (var w in memoryWork is null ? [work] : new[] { work, memoryWork })
            {
                // The agent opens work/cgroup.procs through a descriptor of work: it must be able to search work whatever
                // gardend's umask made it (the directory stays root's: container root may not make cgroups in it).
                File.SetUnixFileMode(w, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                    | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
                // Writing a pid into cgroup.procs needs write access to that file (v1 and v2); v2 also wants it on the
                // cgroup.procs of the common ancestor of source (the agent's init) and destination (work): the container's.
                Sys.Lchown(Path.Combine(w, "cgroup.procs"), owner.Uid, owner.Gid);
            }
            if (unified) Sys.Lchown(Path.Combine(pids.Dir(handle), "cgroup.procs"), owner.Uid, owner.Gid);
        }
        return work;
    }

    public string? MemoryProcessCgroup(string handle) => MemoryWork(handle) is { } dir && Directory.Exists(dir) ? dir : null;

    private string? MemoryWork(string handle) =>
        !unified && pieces.OfType<MemoryV1>().FirstOrDefault() is { } memory ? Path.Combine(memory.Dir(handle), ProcessDir) : null;

    public void Release(string handle)
    {
        foreach (var h in hierarchies)
        {
            RemoveIfEmpty(Path.Combine(h, parent, handle, ProcessDir));
            RemoveIfEmpty(Path.Combine(h, parent, handle, InitDir));
            RemoveIfEmpty(Path.Combine(h, parent, handle));
            RemoveIfEmpty(Path.Combine(h, parent));
        }
    }

    public bool Exists(string handle) => hierarchies.Any(h => Directory.Exists(Path.Combine(h, parent, handle)));

    public void Apply(string handle, ResourceLimits limits)
    {
        LimitRules.Validate(limits);
        var owned = pieces.Aggregate(LimitFields.None, (f, p) => f | p.Owns);
        var missing = Requested(limits) & ~owned;
        if (missing != LimitFields.None)
            throw new CgroupLimitException($"{missing}: no cgroup controller for this limit is mounted");

        var w = new LimitWriter();
        try
        {
            foreach (var p in pieces) p.Apply(handle, limits, w);
        }
        catch (CgroupLimitException e)
        {
            var notRestored = w.Rollback();
            if (notRestored.Count == 0) throw;
            throw new CgroupLimitException($"{e.Message}; and these could not be put back: {string.Join("; ", notRestored)}", e);
        }
    }

    public ResourceLimits Read(string handle) => pieces.Aggregate(ResourceLimits.None, (l, p) => p.Read(handle, l));

    public CgroupMetrics Metrics(string handle)
    {
        var m = new MetricsBuilder();
        foreach (var p in pieces) p.Metrics(handle, m);
        return m.Build();
    }

    private static LimitFields Requested(ResourceLimits l) =>
        (l.MemoryBytes is null ? 0 : LimitFields.Memory) | (l.CpuWeight is null ? 0 : LimitFields.CpuWeight)
        | (l.CpuQuota is null ? 0 : LimitFields.CpuQuota) | (l.Pids is null ? 0 : LimitFields.Pids);

    private static void RemoveIfEmpty(string dir)
    {
        try { Directory.Delete(dir); }
        catch (DirectoryNotFoundException) { }
        catch (IOException) { /* EBUSY / ENOTEMPTY: still in use */ }
    }
}
