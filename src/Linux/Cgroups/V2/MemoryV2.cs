namespace Garden.Linux.Cgroups.V2;

/// <summary>cgroup v2 memory files: memory.max, memory.swap.max, memory.current, memory.stat, memory.events.
/// A memory limit also sets memory.swap.max to 0: v2 accounts swap separately (memory.swap.max is swap alone, not
/// memory+swap as v1's memsw), so 0 is the only value that keeps memory+swap within the limit, as v1 memsw = limit does.
/// memory.swap.max is absent without swap accounting; then only memory.max is written.
/// As on v1 (<see cref="V1.MemoryV1"/>), the limit asked is on the processes' cgroup (work), and the container's (agent in
/// init + work) gets it plus the agent's allowance; a container made before that (no work/memory.max: the memory
/// controller not enabled below the container) keeps the limit on its own cgroup.</summary>
internal sealed class MemoryV2(string tree, string parent, ulong agentAllowance) : ControllerPiece(tree, parent)
{
    public override LimitFields Owns => LimitFields.Memory;

    public string LimitedDir(string handle)
    {
        var work = Path.Combine(Dir(handle), CgroupTree.ProcessDir);
        return File.Exists(Path.Combine(work, "memory.max")) ? work : Dir(handle);
    }

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.MemoryBytes is not { } bytes) return;
        var limited = LimitedDir(handle);
        if (limited == Dir(handle))
        {
            Write(limited, bytes, w);
            return;
        }
        var outer = LimitRules.WithAllowance(bytes, agentAllowance);
        ulong? now;
        try { now = CgroupFile.ReadMax(Path.Combine(limited, "memory.max")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new CgroupLimitException($"MemoryBytes: cannot read {Path.Combine(limited, "memory.max")}: {e.Message}", e);
        }
        LimitRules.OuterAndInner(now is null || bytes > now,
            () => Write(Dir(handle), outer, w), () => Write(limited, bytes, w));
    }

    private static void Write(string dir, ulong bytes, LimitWriter w)
    {
        w.Write(Path.Combine(dir, "memory.max"), CgroupFile.Str(bytes), "MemoryBytes");
        var swap = Path.Combine(dir, "memory.swap.max");
        if (File.Exists(swap)) w.Write(swap, "0", "MemoryBytes");
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) =>
        soFar with { MemoryBytes = CgroupFile.ReadMax(Path.Combine(LimitedDir(handle), "memory.max")) };

    public override void Metrics(string handle, MetricsBuilder m)
    {
        var dir = LimitedDir(handle);
        m.MemoryUsageBytes = CgroupFile.ReadULong(Path.Combine(dir, "memory.current"));
        m.MemoryLimitBytes = CgroupFile.ReadMax(Path.Combine(dir, "memory.max"));
        m.MemoryStat = CgroupFile.ReadKeyed(Path.Combine(dir, "memory.stat"));
        m.OomKills = CgroupFile.ReadKey(Path.Combine(dir, "memory.events"), "oom_kill");
    }
}
