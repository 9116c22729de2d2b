namespace Garden.Linux.Cgroups.V1;

/// <summary>cgroup v1 memory controller: memory.limit_in_bytes and memory.memsw.limit_in_bytes (memory+swap) set to
/// the same value, so swap cannot dodge the limit, and memory.kmem.tcp.limit_in_bytes too, so TCP buffers cannot. memsw exists only with swap accounting; without it only the limit is set.
/// The limit asked is that of the processes' cgroup (<see cref="CgroupTree.ProcessDir"/>, which the agent moves every
/// process it spawns into); the container's cgroup (agent + processes) gets it plus the agent's allowance, so a container
/// at its limit OOM-kills one of its processes, never its agent, and nothing in it is unlimited. A container made before
/// the process cgroup had a memory limit (no work/memory.limit_in_bytes) keeps the limit on its own cgroup.</summary>
internal sealed class MemoryV1(string hierarchy, string parent, ulong agentAllowance) : ControllerPiece(hierarchy, parent)
{
    public override LimitFields Owns => LimitFields.Memory;

    /// <summary>The cgroup the limit asked is on, whose usage, limit, stat and OOM kills a user reads.</summary>
    public string LimitedDir(string handle)
    {
        var work = Path.Combine(Dir(handle), CgroupTree.ProcessDir);
        return File.Exists(Path.Combine(work, "memory.limit_in_bytes")) ? work : Dir(handle);
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
        LimitRules.OuterAndInner(bytes > w.ReadULong(Path.Combine(limited, "memory.limit_in_bytes"), "MemoryBytes"),
            () => Write(Dir(handle), outer, w), () => Write(limited, bytes, w));
    }

    private static void Write(string dir, ulong bytes, LimitWriter w)
    {
        var limit = Path.Combine(dir, "memory.limit_in_bytes");
        var memsw = Path.Combine(dir, "memory.memsw.limit_in_bytes");
        var value = CgroupFile.Str(bytes);
        // v1 charges TCP socket buffers to a counter of their own, only once it has a limit: without one, a container
        // limited to 64 MiB queued 2.2 GiB in unread loopback connections (host memory, outside its limit). The same
        // limit bounds them (UDP buffers v1 cannot charge at all; v2 charges all socket memory to memory.max).
        var tcp = Path.Combine(dir, "memory.kmem.tcp.limit_in_bytes");
        if (File.Exists(tcp)) w.Write(tcp, value, "MemoryBytes");
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
        soFar with { MemoryBytes = Limit(LimitedDir(handle)) };

    /// <summary>The processes' cgroup's: usage (which includes the /dev/shm and other tmpfs pages they wrote) against the
    /// limit asked; the agent's few MiB are not in it.</summary>
    public override void Metrics(string handle, MetricsBuilder m)
    {
        var dir = LimitedDir(handle);
        m.MemoryUsageBytes = CgroupFile.ReadULong(Path.Combine(dir, "memory.usage_in_bytes"));
        m.MemoryLimitBytes = Limit(dir);
        m.MemoryStat = CgroupFile.ReadKeyed(Path.Combine(dir, "memory.stat"));
        m.OomKills = CgroupFile.ReadKey(Path.Combine(dir, "memory.oom_control"), "oom_kill");
    }

    private static ulong? Limit(string dir)
    {
        var v = CgroupFile.ReadULong(Path.Combine(dir, "memory.limit_in_bytes"));
        return v >= LimitRules.UnlimitedMemory ? null : v;
    }
}
