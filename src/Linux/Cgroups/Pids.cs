namespace Garden.Linux.Cgroups;

/// <summary>The pids controller: pids.max / pids.current. Its files are the same in v1 and v2, so both lists use this piece.
/// The limit is that of the container's process cgroup (<see cref="CgroupTree.ProcessDir"/>), so the agent's threads do
/// not use it up; a container made before that cgroup existed has it on its own cgroup. The count a user reads is every
/// process of the container: the tasks under the limit plus the agent (PID 1) as the one process it is, counted from
/// the cgroup.procs of the agent's cgroup (<paramref name="agentDir"/> below the container's: "" on v1, init on v2),
/// not from its pids.current, which also counts the agent's threads.</summary>
internal sealed class Pids(string hierarchy, string parent, string agentDir = "") : ControllerPiece(hierarchy, parent)
{
    public override LimitFields Owns => LimitFields.Pids;

    private string PidsFile(string handle, string name)
    {
        var work = Path.Combine(Dir(handle), CgroupTree.ProcessDir);
        return Path.Combine(Directory.Exists(work) ? work : Dir(handle), name);
    }

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.Pids is { } max) w.Write(PidsFile(handle, "pids.max"), CgroupFile.Str(max), "Pids");
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) =>
        soFar with { Pids = CgroupFile.ReadMax(PidsFile(handle, "pids.max")) };

    public override void Metrics(string handle, MetricsBuilder m)
    {
        var work = Path.Combine(Dir(handle), CgroupTree.ProcessDir);
        m.PidsCurrent = Directory.Exists(work)
            ? CgroupFile.ReadULong(Path.Combine(work, "pids.current")) + AgentProcesses(handle)
            : CgroupFile.ReadULong(Path.Combine(Dir(handle), "pids.current"));
        m.PidsMax = CgroupFile.ReadMax(PidsFile(handle, "pids.max"));
    }

    private ulong AgentProcesses(string handle)
    {
        var procs = Path.Combine(Dir(handle), agentDir, "cgroup.procs");
        return File.Exists(procs) ? (ulong)File.ReadLines(procs).Count(l => l.Length > 0) : 0;
    }
}
