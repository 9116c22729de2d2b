namespace Garden.Linux.Cgroups.V2;

/// <summary>cgroup v2 cpu files: cpu.weight (converted from cpu.shares units as runc does), cpu.max, cpu.stat.</summary>
internal sealed class CpuV2(string tree, string parent) : ControllerPiece(tree, parent)
{
    public override LimitFields Owns => LimitFields.CpuWeight | LimitFields.CpuQuota;

    public override void Apply(string handle, ResourceLimits limits, LimitWriter w)
    {
        if (limits.CpuWeight is { } shares)
            w.Write(FileOf(handle, "cpu.weight"), CgroupFile.Str(LimitRules.SharesToWeight(shares)), "CpuWeight");
        if (limits.CpuQuota is { } cpus)
            w.Write(FileOf(handle, "cpu.max"), $"{CgroupFile.Str(LimitRules.QuotaUs(cpus))} {CgroupFile.Str(LimitRules.CfsPeriodUs)}", "CpuQuota");
    }

    /// <summary>The weight comes back in cpu.shares units: the smallest shares value that converts to the kernel's weight.</summary>
    public override ResourceLimits Read(string handle, ResourceLimits soFar)
    {
        var max = CgroupFile.Read(FileOf(handle, "cpu.max")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        double? quota = max.Length == 2 && max[0] != "max" && ulong.TryParse(max[0], System.Globalization.CultureInfo.InvariantCulture, out var q) && ulong.TryParse(max[1], System.Globalization.CultureInfo.InvariantCulture, out var p) && p > 0
            ? (double)q / p
            : null;
        return soFar with
        {
            CpuWeight = LimitRules.WeightToShares(CgroupFile.ReadULong(FileOf(handle, "cpu.weight"))),
            CpuQuota = quota,
        };
    }

    public override void Metrics(string handle, MetricsBuilder m)
    {
        var stat = CgroupFile.ReadKeyed(FileOf(handle, "cpu.stat"));
        m.CpuUsageNs = stat.GetValueOrDefault("usage_usec") * 1000;
        m.CpuUserNs = stat.GetValueOrDefault("user_usec") * 1000;
        m.CpuSystemNs = stat.GetValueOrDefault("system_usec") * 1000;
    }
}
