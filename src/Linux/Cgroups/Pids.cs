namespace Garden.Linux.Cgroups;

/// <summary>The pids controller: pids.max / pids.current. Its files are the same in v1 and v2, so both lists use this piece.
/// The limit is that of the container's process cgroup (<see cref="CgroupTree.ProcessDir"/>), so the agent's threads do
/// not use it up; a container made before that cgroup existed has it on its own cgroup. The count a user reads is every
/// process of the container: the tasks under the limit plus the agent (PID 1) as the one process it is, counted from
/// the cgroup.procs of the agent's cgroup (<paramref name="agentDir"/> below the container's: "" on v1, init on v2),
/// not from its pids.current, which also counts the agent's threads.
/// <para>The agent's spawner (its fork server, src/Agent/native/spawn.c) lives in the process cgroup, since a child is
/// born in its parent's cgroup: the process cgroup's pids.max is the limit asked plus <see cref="SpawnerReserve"/>, so
/// the container's own processes may be as many as asked, and the spawner counts with the agent as its one process
/// (what is read back subtracts it again). If container root kills the spawner, its slot is free until the agent starts
/// another: a container that kills its own spawner may run one process more than asked.</para></summary>
internal sealed class Pids(string hierarchy, string parent, string agentDir = "") : ControllerPiece(hierarchy, parent)
{
    /// <summary>The process cgroup's slot for the agent's spawner.</summary>
    public const ulong SpawnerReserve = 1;

    /// <summary>The kernel's PID_MAX_LIMIT: pids.max must stay below it plus one, and no more tasks than that can exist.</summary>
    private const ulong PidMaxLimit = 4_194_304;

    public override LimitFields Owns => LimitFields.Pids;

    private string WorkDir(string handle) => Path.Combine(Dir(handle), CgroupTree.ProcessDir);

    /// <summary>The cgroup the limit is on, and the slots on it beyond the limit asked (the spawner's, in work).</summary>
    private (string Dir, ulong Reserve) Limited(string handle)
    {
        var work = WorkDir(handle);
        return Directory.Exists(work) ? (work, SpawnerReserve) : (Dir(handle), 0);
    }

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.Pids is not { } max) return;
        var (dir, reserve) = Limited(handle);
        w.Write(Path.Combine(dir, "pids.max"), max + reserve > PidMaxLimit ? "max" : CgroupFile.Str(max + reserve), "Pids");
    }

    private ulong? ReadLimit(string handle)
    {
        var (dir, reserve) = Limited(handle);
        return CgroupFile.ReadMax(Path.Combine(dir, "pids.max")) is { } v ? v - Math.Min(v, reserve) : null;
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) => soFar with { Pids = ReadLimit(handle) };

    public override void Metrics(string handle, MetricsBuilder m)
    {
        var work = WorkDir(handle);
        if (Directory.Exists(work))
        {
            // The spawner is the agent's: one process with it (a spawner just killed is not there to subtract). The agent's
            // cgroup holds the agent and, for a few milliseconds each, a process on its way into work (the spawner as it
            // starts, a process the direct path starts): the agent is one process.
            var tasks = CgroupFile.ReadULong(Path.Combine(work, "pids.current"));
            m.PidsCurrent = tasks - Math.Min(tasks, SpawnerReserve) + Math.Min(AgentProcesses(handle), 1);
        }
        else m.PidsCurrent = CgroupFile.ReadULong(Path.Combine(Dir(handle), "pids.current"));
        m.PidsMax = ReadLimit(handle);
    }

    private ulong AgentProcesses(string handle)
    {
        var procs = Path.Combine(Dir(handle), agentDir, "cgroup.procs");
        return File.Exists(procs) ? (ulong)File.ReadLines(procs).Count(l => l.Length > 0) : 0;
    }
}
