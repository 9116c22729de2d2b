namespace Garden.Linux.Cgroups.V2;

/// <summary>cgroup v2 memory files: memory.max, memory.swap.max, memory.current, memory.stat, memory.events.
/// A memory limit also sets memory.swap.max to 0: v2 accounts swap separately (memory.swap.max is swap alone, not
/// memory+swap as v1's memsw), so 0 is the only value that keeps memory+swap within the limit, as v1 memsw = limit does.
/// memory.swap.max is absent without swap accounting; then only memory.max is written.</summary>
internal sealed class MemoryV2(string tree, string parent) : ControllerPiece(tree, parent)
{
    public override LimitFields Owns => LimitFields.Memory;

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.MemoryBytes is not { } bytes) return;
        w.Write(FileOf(handle, "memory.max"), CgroupFile.Str(bytes), "MemoryBytes");
        var swap = FileOf(handle, "memory.swap.max");
        if (File.Exists(swap)) w.Write(swap, "0", "MemoryBytes");
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) =>
        soFar with { MemoryBytes = CgroupFile.ReadMax(FileOf(handle, "memory.max")) };

    public override void Metrics(string handle, MetricsBuilder m)
    {
        m.MemoryUsageBytes = CgroupFile.ReadULong(FileOf(handle, "memory.current"));
        m.MemoryLimitBytes = CgroupFile.ReadMax(FileOf(handle, "memory.max"));
        m.MemoryStat = CgroupFile.ReadKeyed(FileOf(handle, "memory.stat"));
        m.OomKills = CgroupFile.ReadKey(FileOf(handle, "memory.events"), "oom_kill");
    }
}
