namespace Garden.Linux.Cgroups.V1;

/// <summary>cgroup v1 cpu controller: cpu.shares (weight) and CFS bandwidth (cpu.cfs_period_us / cpu.cfs_quota_us).</summary>
internal sealed class CpuV1(string hierarchy, string parent) : ControllerPiece(hierarchy, parent)
{
    public override LimitFields Owns => LimitFields.CpuWeight | LimitFields.CpuQuota;

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.CpuWeight is { } shares)
            w.Write(FileOf(handle, "cpu.shares"), CgroupFile.Str(shares), "CpuWeight");
        if (limits.CpuQuota is { } cpus)
        {
            w.Write(FileOf(handle, "cpu.cfs_period_us"), CgroupFile.Str(LimitRules.CfsPeriodUs), "CpuQuota");
            w.Write(FileOf(handle, "cpu.cfs_quota_us"), CgroupFile.Str(LimitRules.QuotaUs(cpus)), "CpuQuota");
        }
    }

    public override ResourceLimits Read(string handle, ResourceLimits soFar)
    {
        var quota = CgroupFile.ReadLong(FileOf(handle, "cpu.cfs_quota_us"));
        var period = CgroupFile.ReadULong(FileOf(handle, "cpu.cfs_period_us"));
        return soFar with
        {
            CpuWeight = CgroupFile.ReadULong(FileOf(handle, "cpu.shares")),
            CpuQuota = quota < 0 ? null : (double)quota / period,
        };
    }

    public override void Metrics(string handle, MetricsBuilder m) { } // usage comes from cpuacct
}
