namespace Garden.Linux.Cgroups;

/// <summary>The pids controller: pids.max / pids.current. Its files are the same in v1 and v2, so both lists use this piece.</summary>
internal sealed class Pids(string hierarchy, string parent) : ControllerPiece(hierarchy, parent)
{
    public override LimitFields Owns => LimitFields.Pids;

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.Pids is { } max) w.Write(FileOf(handle, "pids.max"), CgroupFile.Str(max), "Pids");
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) =>
        soFar with { Pids = CgroupFile.ReadMax(FileOf(handle, "pids.max")) };

    public override void Metrics(string handle, MetricsBuilder m)
    {
        m.PidsCurrent = CgroupFile.ReadULong(FileOf(handle, "pids.current"));
        m.PidsMax = CgroupFile.ReadMax(FileOf(handle, "pids.max"));
    }
}
