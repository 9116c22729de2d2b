namespace Garden.Linux.Cgroups;

/// <summary>The pids controller: pids.max / pids.current. Its files are the same in v1 and v2, so both lists use this piece.
/// The limit and the count are those of the container's process cgroup (<see cref="CgroupTree.ProcessDir"/>), so the
/// agent's threads are not counted; a container made before that cgroup existed has them on its own cgroup.</summary>
internal sealed class Pids(string hierarchy, string parent) : ControllerPiece(hierarchy, parent)
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
        m.PidsCurrent = CgroupFile.ReadULong(PidsFile(handle, "pids.current"));
        m.PidsMax = CgroupFile.ReadMax(PidsFile(handle, "pids.max"));
    }
}
