namespace Garden.Linux.Cgroups.V1;

/// <summary>cgroup v1 cpuacct controller: CPU usage in ns (no limits).</summary>
internal sealed class CpuacctV1(string hierarchy, string parent) : ControllerPiece(hierarchy, parent)
{
    public override LimitFields Owns => LimitFields.None;

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w) { }

    public override ResourceLimits Read(string handle, ResourceLimits soFar) => soFar;

    public override void Metrics(string handle, MetricsBuilder m)
    {
        m.CpuUsageNs = CgroupFile.ReadULong(FileOf(handle, "cpuacct.usage"));
        m.CpuUserNs = CgroupFile.ReadULong(FileOf(handle, "cpuacct.usage_user"));
        m.CpuSystemNs = CgroupFile.ReadULong(FileOf(handle, "cpuacct.usage_sys"));
    }
}
