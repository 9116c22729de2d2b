using System.Collections.Immutable;
using Garden.Actors;
using Garden.Actors.Container;
using Api = Garden.Protocol.Api;

namespace Garden.Host.Gateway;

/// <summary>Protobuf ↔ domain records. No decisions here: validation belongs to the actors.</summary>
public static class Translate
{
    public static ContainerSpec ToDomain(Api.ContainerSpec? s) => s is null
        ? new ContainerSpec("", "", [], ImmutableDictionary<string, string>.Empty, false)
        : new ContainerSpec(s.Handle, s.Rootfs, [.. s.Env], s.Properties.ToImmutableDictionary(), s.Privileged, ToDomain(s.Limits));

    /// <summary>0 (or absent) means "not limited" / "leave as is".</summary>
    public static Limits ToDomain(Api.Limits? l) => l is null ? Limits.None : new(
        l.MemoryBytes == 0 ? null : l.MemoryBytes, l.CpuWeight == 0 ? null : l.CpuWeight, l.CpuQuota == 0 ? null : l.CpuQuota,
        l.Pids == 0 ? null : l.Pids, l.DiskBytes == 0 ? null : l.DiskBytes);

    public static Api.Limits ToApi(Limits l) => new()
    {
        MemoryBytes = l.MemoryBytes ?? 0, CpuWeight = l.CpuWeight ?? 0, CpuQuota = l.CpuQuota ?? 0, Pids = l.Pids ?? 0, DiskBytes = l.DiskBytes ?? 0,
    };

    public static Api.ContainerMetrics ToApi(ContainerMetrics m)
    {
        var r = new Api.ContainerMetrics
        {
            Handle = m.Handle,
            MemoryUsageBytes = m.Cgroup.MemoryUsageBytes,
            MemoryLimitBytes = m.Cgroup.MemoryLimitBytes ?? 0,
            OomKills = m.Cgroup.OomKills,
            CpuUsageNs = m.Cgroup.CpuUsageNs,
            CpuUserNs = m.Cgroup.CpuUserNs,
            CpuSystemNs = m.Cgroup.CpuSystemNs,
            PidsCurrent = m.Cgroup.PidsCurrent,
            PidsMax = m.Cgroup.PidsMax ?? 0,
            DiskUsedBytes = m.DiskUsedBytes,
            DiskLimitBytes = m.DiskLimitBytes,
            AgeSeconds = (ulong)Math.Max(0, m.Age.TotalSeconds),
        };
        foreach (var (k, v) in m.Cgroup.MemoryStat) r.MemoryStat[k] = v;
        return r;
    }

    public static ProcessSpec ToDomain(Api.ProcessSpec? s)
    {
        if (s is null) throw GardenException.Invalid("spec", "missing");
        return new ProcessSpec(s.Id, s.Path, [.. s.Args], [.. s.Env], s.Dir, s.User,
            [.. s.Rlimits.Select(r => new RlimitSpec(r.Name, r.Soft, r.Hard))],
            s.Tty is null ? null : new TtySize(s.Tty.Rows, s.Tty.Cols));
    }

    public static Api.ContainerInfo ToApi(ContainerInfo i)
    {
        var r = new Api.ContainerInfo
        {
            Handle = i.Handle,
            State = ContainerState.Describe(i.State),
            ContainerPath = i.ContainerPath,
            Rootfs = i.Rootfs,
            Privileged = i.Privileged,
            Limits = ToApi(i.Limits),
        };
        r.Events.AddRange(i.Events);
        r.ProcessIds.AddRange(i.ProcessIds);
        r.Properties.Add(i.Properties);
        return r;
    }
}
