using System.Collections.Immutable;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Linux.Network;

namespace Garden.Host.ApiCore;

/// <summary>Protobuf ↔ domain records: shapes only, and whether a message the domain needs is present at all. Every value
/// is checked by the domain (src/Actors/Validation), not here. The protobuf types are written
/// <c>Protocol.Api.X</c>: most share a name with the domain record they become.</summary>
public static class Translate
{
    /// <summary>The spec's root: its image (a reference with a scheme, or a directory) or its rootfs, not both.</summary>
    private static string RootfsOrImage(Protocol.Api.ContainerSpec s) =>
        s.Image.Length == 0 ? s.Rootfs
        : s.Rootfs.Length > 0 ? throw GardenException.Invalid("image", $"give either image or rootfs, not both (image \"{s.Image}\", rootfs \"{s.Rootfs}\")")
        : s.Image;

    public static ContainerSpec ToDomain(Protocol.Api.ContainerSpec? s) => s is null
        ? new ContainerSpec("", "", [], ImmutableDictionary<string, string>.Empty, false)
        : new ContainerSpec(s.Handle, RootfsOrImage(s), [.. s.Env], s.Properties.ToImmutableDictionary(), s.Privileged, ToDomain(s.Limits),
            NetworkRequest: s.Network,
            NetIn: [.. s.NetIn.Select(m => new PortMapping(Port(m.HostPort), Port(m.ContainerPort)))],
            NetOut: [.. s.NetOut.Select((r, i) => ToDomain(r, $"net-out[{i}]"))],
            BindMounts: [.. s.BindMounts.Select(b => new BindMount(b.Src, b.Dst, b.ReadOnly))],
            GraceTime: s.HasGraceTimeMs ? Millis(s.GraceTimeMs) : null);

    /// <summary>Milliseconds as sent; beyond what a TimeSpan holds becomes the largest one (refused by the actors as out of range).</summary>
    public static TimeSpan Millis(ulong ms) => ms > (ulong)TimeSpan.MaxValue.TotalMilliseconds / 2 ? TimeSpan.MaxValue : TimeSpan.FromMilliseconds(ms);

    public static Protocol.Api.ContainerEvent ToApi(EventsProtocol.ContainerEvent e) => new()
    {
        Handle = e.Handle, Kind = e.Kind, ProcessId = e.ProcessId ?? "", ExitCode = e.ExitCode ?? 0, AtUnixMs = e.At.ToUnixTimeMilliseconds(),
        Detail = e.Detail,
    };

    /// <summary>A port as sent; beyond what an int holds becomes the largest one (refused by the domain as out of range).</summary>
    public static int Port(uint p) => p > int.MaxValue ? int.MaxValue : (int)p;

    /// <summary>A rule as sent: "a.b.c.d", "a.b.c.d/n" or start-end addresses; ports with end 0 = one port; an ICMP code
    /// below 0 = every code. <paramref name="field"/> names the rule in errors.</summary>
    public static NetOutRule ToDomain(Protocol.Api.NetOutRule r, string field = "rule") => NetworkRequests.Rule(
        (int)r.Protocol,
        r.Networks.Select(n => (n.Start, n.End)),
        r.Ports.Select(p => (Port(p.Start), Port(p.End))),
        r.Icmp is null ? null : (int)Math.Min(r.Icmp.Type, int.MaxValue),
        r.Icmp is null || r.Icmp.Code < 0 ? null : r.Icmp.Code,
        r.Log, field);

    /// <summary>0 (or absent) means "not limited" / "leave as is".</summary>
    public static Limits ToDomain(Protocol.Api.Limits? l) => l is null ? Limits.None : new(
        l.MemoryBytes == 0 ? null : l.MemoryBytes, l.CpuWeight == 0 ? null : l.CpuWeight, l.CpuQuota == 0 ? null : l.CpuQuota,
        l.Pids == 0 ? null : l.Pids, l.DiskBytes == 0 ? null : l.DiskBytes,
        l.BandwidthRate == 0 ? null : l.BandwidthRate, l.BandwidthBurst == 0 ? null : l.BandwidthBurst,
        l.DiskScope switch
        {
            Protocol.Api.DiskScope.Unspecified => null,
            Protocol.Api.DiskScope.Exclusive => DiskScope.Exclusive,
            Protocol.Api.DiskScope.Total => DiskScope.Total,
            var other => throw GardenException.Invalid("limits.disk_scope", $"{(int)other} is neither 1 (exclusive) nor 2 (total)"),
        });

    public static Protocol.Api.Limits ToApi(Limits l) => new()
    {
        MemoryBytes = l.MemoryBytes ?? 0, CpuWeight = l.CpuWeight ?? 0, CpuQuota = l.CpuQuota ?? 0, Pids = l.Pids ?? 0, DiskBytes = l.DiskBytes ?? 0,
        BandwidthRate = l.BandwidthRate ?? 0, BandwidthBurst = l.BandwidthBurst ?? 0,
        DiskScope = l.DiskScope switch
        {
            DiskScope.Total => Protocol.Api.DiskScope.Total,
            DiskScope.Exclusive => Protocol.Api.DiskScope.Exclusive,
            _ => Protocol.Api.DiskScope.Unspecified,
        },
    };

    public static Protocol.Api.ContainerMetrics ToApi(ContainerProtocol.ContainerMetrics m)
    {
        var r = new Protocol.Api.ContainerMetrics
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
            DiskImageBytes = m.BaseRootfsBytes,
            DiskTotalBytes = m.DiskUsedBytes + m.BaseRootfsBytes,
            AgeSeconds = (ulong)Math.Max(0, m.Age.TotalSeconds),
            RxBytes = m.Network.RxBytes,
            TxBytes = m.Network.TxBytes,
        };
        foreach (var (k, v) in m.Cgroup.MemoryStat) r.MemoryStat[k] = v;
        return r;
    }

    /// <summary>A terminal size, which a SetTty must carry.</summary>
    public static TtySize ToDomain(Protocol.Api.TtySpec? size) =>
        size is null ? throw GardenException.Invalid("size", "missing") : new TtySize(size.Rows, size.Cols);

    public static ProcessSpec ToDomain(Protocol.Api.ProcessSpec? s)
    {
        if (s is null) throw GardenException.Invalid("spec", "missing");
        return new ProcessSpec(s.Id, s.Path, [.. s.Args], [.. s.Env], s.Dir, s.User,
            [.. s.Rlimits.Select(r => new RlimitSpec(r.Name, r.Soft, r.Hard))],
            s.Tty is null ? null : new TtySize(s.Tty.Rows, s.Tty.Cols),
            s.Image, s.PeaLimits is { } l ? new PeaLimits(l.MemoryBytes, l.CpuWeight, l.Pids) : null);
    }

    public static Protocol.Api.ContainerInfo ToApi(ContainerProtocol.ContainerInfo i)
    {
        var r = new Protocol.Api.ContainerInfo
        {
            Handle = i.Handle,
            State = ContainerState.Describe(i.State),
            ContainerPath = i.ContainerPath,
            Rootfs = i.Rootfs,
            Privileged = i.Privileged,
            Limits = ToApi(i.Limits),
        };
        if (i.Network is { } n)
        {
            r.Network = n.Subnet.ToString();
            r.HostIp = n.Gateway.ToString();
            r.ContainerIp = n.Address.ToString();
        }
        r.MappedPorts.AddRange((i.MappedPorts ?? []).Select(m => new Protocol.Api.PortMapping { HostPort = (uint)m.HostPort, ContainerPort = (uint)m.ContainerPort }));
        r.BindMounts.AddRange((i.BindMounts.IsDefault ? [] : i.BindMounts).Select(b => new Protocol.Api.BindMount { Src = b.Source, Dst = b.Destination, ReadOnly = b.ReadOnly }));
        r.GraceTimeMs = (ulong)i.GraceTime.TotalMilliseconds;
        r.OomKills = i.OomKills;
        r.LastOomUnixMs = i.LastOom?.ToUnixTimeMilliseconds() ?? 0;
        if (i.UserNamespace is { } userns)
        {
            r.UserNamespace = new Protocol.Api.UserNamespace();
            r.UserNamespace.UidMap.AddRange(userns.Uids.Select(m => new Protocol.Api.IdMap { ContainerId = m.ContainerId, HostId = m.HostId, Size = m.Size }));
            r.UserNamespace.GidMap.AddRange(userns.Gids.Select(m => new Protocol.Api.IdMap { ContainerId = m.ContainerId, HostId = m.HostId, Size = m.Size }));
        }
        r.Events.AddRange(i.Events);
        r.ProcessIds.AddRange(i.ProcessIds);
        r.Properties.Add(i.Properties);
        return r;
    }
}
