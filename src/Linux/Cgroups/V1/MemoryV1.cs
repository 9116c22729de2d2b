namespace Garden.Linux.Cgroups.V1;

/// <summary>cgroup v1 memory controller: memory.limit_in_bytes and memory.memsw.limit_in_bytes (memory+swap) set to
/// the same value, so swap cannot dodge the limit. memsw exists only with swap accounting; without it only the limit is set.</summary>
internal sealed class MemoryV1(string hierarchy, string parent) : ControllerPiece(hierarchy, parent)
{
    public override LimitFields Owns => LimitFields.Memory;

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.MemoryBytes is not { } bytes) return;
        var limit = FileOf(handle, "memory.limit_in_bytes");
        var memsw = FileOf(handle, "memory.memsw.limit_in_bytes");
        var value = CgroupFile.Str(bytes);
        if (!File.Exists(memsw))
        {
            w.Write(limit, value, "MemoryBytes");
            return;
        }
        // The kernel keeps memsw ≥ limit: raising moves memsw first, lowering moves the limit first.
        if (bytes > w.ReadULong(limit, "MemoryBytes"))
        {
            w.Write(memsw, value, "MemoryBytes");
            w.Write(limit, value, "MemoryBytes");
        }
        else
        {
            w.Write(limit, value, "MemoryBytes");
            w.Write(memsw, value, "MemoryBytes");
        }
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) =>
        soFar with { MemoryBytes = Limit(handle) };

    public override void Metrics(string handle, MetricsBuilder m)
    {
        m.MemoryUsageBytes = CgroupFile.ReadULong(FileOf(handle, "memory.usage_in_bytes"));
        m.MemoryLimitBytes = Limit(handle);
        m.MemoryStat = CgroupFile.ReadKeyed(FileOf(handle, "memory.stat"));
        m.OomKills = CgroupFile.ReadKey(FileOf(handle, "memory.oom_control"), "oom_kill");
    }

    private ulong? Limit(string handle)
    {
        var v = CgroupFile.ReadULong(FileOf(handle, "memory.limit_in_bytes"));
        return v >= LimitRules.UnlimitedMemory ? null : v;
    }
}
