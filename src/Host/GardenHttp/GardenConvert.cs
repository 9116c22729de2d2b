using Garden.Actors;
using Api = Garden.Protocol.Api;

namespace Garden.Host.GardenHttp;

/// <summary>Garden's JSON ↔ garden.proto: shapes only. What the domain validates (names, ranges, paths, addresses) it
/// validates for every transport; what is checked here is what only Garden's shapes can get wrong, named by Garden's
/// JSON field names:
/// <list type="bullet">
/// <item>a memory or pid limit of 2^64-1 (Go's "unlimited" idiom) is refused, never read as a limit;</item>
/// <item>an image URI that is not a directory path (docker://, oci://) is refused — this gardend has no image plugin —,
/// for a container's image and a process's own (a "pea");</item>
/// <item>durations are nanoseconds (Garden) → milliseconds (ours), rounded up so that a short grace time is not 0 = never;</item>
/// <item>Signal 0/1 → TERM/KILL; a TTY without a size is 80x24.</item>
/// </list></summary>
public static class GardenConvert
{
    public const ulong Unlimited = ulong.MaxValue;
    private const uint DefaultColumns = 80, DefaultRows = 24;

    // ---------------------------------------------------------------- requests: Garden JSON → protobuf

    public static Api.CreateRequest ToCreate(ContainerSpec spec)
    {
        var s = new Api.ContainerSpec
        {
            Handle = spec.Handle ?? "",
            Privileged = spec.Privileged,
            Network = spec.Network ?? "",
            Limits = ToLimits(spec.Limits),
        };
        var root = Rootfs(spec.RootFSPath, spec.Image?.URI);
        if (Garden.Linux.Images.ImageReference.IsImage(root)) s.Image = root; else s.Rootfs = root;
        if (spec.GraceTime < 0) throw GardenException.Invalid("grace_time", $"{spec.GraceTime}ns is negative");
        if (spec.GraceTime > 0) s.GraceTimeMs = Millis(spec.GraceTime);
        s.Env.AddRange(Strings(spec.Env));
        foreach (var (k, v) in spec.Properties ?? []) s.Properties[k] = v ?? "";
        s.BindMounts.AddRange((spec.BindMounts ?? []).Select((b, i) => ToBindMount(b, $"bind_mounts[{i}]")));
        s.NetIn.AddRange((spec.NetIn ?? []).Select(n => new Api.PortMapping { HostPort = n?.HostPort ?? 0, ContainerPort = n?.ContainerPort ?? 0 }));
        s.NetOut.AddRange((spec.NetOut ?? []).Select((r, i) => ToRule(r, $"netout_rules[{i}]")));
        return new Api.CreateRequest { Spec = s };
    }

    /// <summary>image.uri (or the deprecated rootfs): empty = the default rootfs; a directory path as is (raw:///dir too);
    /// docker://, oci://, oci-archive:// and docker-archive:// an image to fetch (checked by the daemon).</summary>
    private static string Rootfs(string? rootfsPath, string? imageUri)
    {
        if (!string.IsNullOrEmpty(rootfsPath) && !string.IsNullOrEmpty(imageUri))
            throw GardenException.Invalid("image.uri", $"give either image.uri or rootfs, not both (image.uri \"{imageUri}\", rootfs \"{rootfsPath}\")");
        var (field, uri) = string.IsNullOrEmpty(imageUri) ? ("rootfs", rootfsPath ?? "") : ("image.uri", imageUri);
        if (uri.Length == 0 || uri.StartsWith('/')) return uri;
        if (uri.StartsWith("raw://", StringComparison.Ordinal) && uri.Length > 6 && uri[6] == '/') return uri[6..];
        if (uri.Split("://")[0] is "docker" or "oci" or "oci-archive" or "docker-archive") return uri;   // the daemon reads the rest
        throw GardenException.Invalid(field,
            $"\"{uri}\" is neither a directory path nor an image (docker://HOST/NAME:TAG, oci:///layout:TAG, oci-archive:///file.tar, docker-archive:///file.tar)");
    }

    private static Api.Limits ToLimits(Limits? l)
    {
        if (l?.Memory?.LimitInBytes == Unlimited)
            throw GardenException.Invalid("limits.memory_limits.limit_in_bytes", "18446744073709551615 (2^64-1) is not a limit; leave it out (or 0) for none");
        if (l?.Pid?.Max == Unlimited)
            throw GardenException.Invalid("limits.pid_limits.max", "18446744073709551615 (2^64-1) is not a limit; leave it out (or 0) for none");
        var cpu = l?.CPU;
        return new Api.Limits
        {
            MemoryBytes = l?.Memory?.LimitInBytes ?? 0,
            // weight is the current name, limit_in_shares the deprecated one; guardian takes limit_in_shares when weight is 0
            CpuWeight = cpu is null ? 0 : cpu.Weight != 0 ? cpu.Weight : cpu.LimitInShares,
            Pids = l?.Pid?.Max ?? 0,
            // byte_hard is the limit (guardian's image plugins enforce only it; inode limits are not kept by anyone here);
            // Garden's scope 0 is total (the image counts against it), 1 exclusive
            DiskBytes = l?.Disk?.ByteHard ?? 0,
            DiskScope = l?.Disk is not { ByteHard: > 0 } d ? Api.DiskScope.Unspecified
                : d.Scope switch
                {
                    0 => Api.DiskScope.Total,
                    1 => Api.DiskScope.Exclusive,
                    _ => throw GardenException.Invalid("limits.disk_limits.scope", $"{d.Scope} is neither 0 (total) nor 1 (exclusive)"),
                },
            BandwidthRate = l?.Bandwidth?.RateInBytesPerSecond ?? 0,
            BandwidthBurst = l?.Bandwidth?.BurstRateInBytesPerSecond ?? 0,
        };
    }

    private static Api.BindMount ToBindMount(BindMount? b, string field)
    {
        if (b is null) throw GardenException.Invalid(field, "null is not a bind mount");
        if (b.Origin > 1) throw GardenException.Invalid($"{field}.origin", $"{b.Origin} is neither 0 (host) nor 1 (container)");
        if (b.Origin == 1)
            throw GardenException.Invalid($"{field}.origin", "1 (a path inside the container) is not supported: give a host path (origin 0)");
        if (b.Mode > 1) throw GardenException.Invalid($"{field}.mode", $"{b.Mode} is neither 0 (read-only) nor 1 (read-write)");
        return new Api.BindMount { Src = b.SrcPath ?? "", Dst = b.DstPath ?? "", ReadOnly = b.Mode == 0 };
    }

    /// <summary>A NetOutRule: protocol 0-3, start/end addresses (end absent = start only), ports (end 0 = start only),
    /// ICMP type and code (code absent = every code, as our -1).</summary>
    public static Api.NetOutRule ToRule(NetOutRule? r, string field)
    {
        if (r is null) throw GardenException.Invalid(field, "null is not a rule");
        if (r.Protocol > 3) throw GardenException.Invalid($"{field}.protocol", $"{r.Protocol} is none of 0 (all), 1 (tcp), 2 (udp), 3 (icmp)");
        var rule = new Api.NetOutRule { Protocol = (Api.NetOutRule.Types.Protocol)r.Protocol, Log = r.Log };
        rule.Networks.AddRange((r.Networks ?? []).Select(n => new Api.IpRange { Start = n?.Start ?? "", End = n?.End ?? "" }));
        rule.Ports.AddRange((r.Ports ?? []).Select(p => new Api.PortRange { Start = p?.Start ?? 0, End = p?.End ?? 0 }));
        if (r.ICMPs is { } icmp) rule.Icmp = new Api.IcmpControl { Type = icmp.Type, Code = icmp.Code ?? -1 };
        return rule;
    }

    public static Api.NetOutRequest ToNetOut(string handle, NetOutRule? rule) => new() { Handle = handle, Rule = ToRule(rule, "rule") };

    public static Api.BulkNetOutRequest ToBulkNetOut(string handle, List<NetOutRule?>? rules)
    {
        var r = new Api.BulkNetOutRequest { Handle = handle };
        r.Rules.AddRange((rules ?? []).Select((x, i) => ToRule(x, $"rules[{i}]")));
        return r;
    }

    public static Api.NetInRequest ToNetIn(string handle, NetInRequest r) => new() { Handle = handle, HostPort = r.HostPort, ContainerPort = r.ContainerPort };

    public static Api.SetGraceTimeRequest ToGraceTime(string handle, long nanoseconds) => nanoseconds < 0
        ? throw GardenException.Invalid("grace_time", $"{nanoseconds}ns is negative")
        : new() { Handle = handle, GraceTimeMs = Millis(nanoseconds) };

    /// <summary>Nanoseconds → milliseconds, rounded up: 1ns of grace is not "never reaped".</summary>
    public static ulong Millis(long nanoseconds) => (ulong)(nanoseconds / 1_000_000) + (nanoseconds % 1_000_000 == 0 ? 0UL : 1UL);

    public static Api.RunRequest ToRun(string handle, ProcessSpec spec)
    {
        // A process's own image makes it a pea: a directory path, as a Create's rootfs (no registry, no image plugin).
        var image = string.IsNullOrEmpty(spec.Image?.URI) ? "" : Rootfs(null, spec.Image.URI);
        if (image.Length > 0 && image[0] != '/')
            throw GardenException.Invalid("image.uri", $"\"{spec.Image!.URI}\": a process's own image (a pea) is a directory path " +
                "(raw:///DIR or /DIR); image references (docker://, oci://, ...) are for a container's Create");
        if (spec.BindMounts is { Count: > 0 })
            throw GardenException.Invalid("bind_mounts", "bind mounts of a process (a pea's) are not supported: give them to the container at its Create");
        var p = new Api.ProcessSpec
        {
            Id = spec.ID ?? "",
            Path = spec.Path ?? "",
            Dir = spec.Dir ?? "",
            User = spec.User ?? "",
            Tty = spec.TTY is null ? null : ToTty(spec.TTY.WindowSize, "tty.window_size"),
        };
        p.Args.AddRange(Strings(spec.Args));
        p.Env.AddRange(Strings(spec.Env));
        p.Rlimits.AddRange(Rlimits(spec.Limits));
        p.Image = image;
        // OverrideContainerLimits: absent = the pea shares its container's limits; present (even empty) = its own
        if (image.Length > 0 && spec.OverrideContainerLimits is { } own)
        {
            if (own.Memory?.LimitInBytes == Unlimited)
                throw GardenException.Invalid("limits.memory_limits.limit_in_bytes", "18446744073709551615 (2^64-1) is not a limit; leave it out (or 0) for none");
            p.PeaLimits = new Api.PeaLimits { MemoryBytes = own.Memory?.LimitInBytes ?? 0, CpuWeight = own.CPU is { } cpu ? (cpu.Weight != 0 ? cpu.Weight : cpu.LimitInShares) : 0 };
        }
        return new Api.RunRequest { Handle = handle, Spec = p };
    }

    /// <summary>Garden gives each rlimit one value, soft and hard alike.</summary>
    private static IEnumerable<Api.Rlimit> Rlimits(ResourceLimits? r)
    {
        if (r is null) yield break;
        (string Name, ulong? Value)[] all =
        [
            ("as", r.As), ("core", r.Core), ("cpu", r.Cpu), ("data", r.Data), ("fsize", r.Fsize), ("locks", r.Locks),
            ("memlock", r.Memlock), ("msgqueue", r.Msgqueue), ("nice", r.Nice), ("nofile", r.Nofile), ("nproc", r.Nproc),
            ("rss", r.Rss), ("rtprio", r.Rtprio), ("sigpending", r.Sigpending), ("stack", r.Stack),
        ];
        foreach (var (name, value) in all)
            if (value is { } v) yield return new Api.Rlimit { Name = name, Soft = v, Hard = v };
    }

    /// <summary>A window size; absent or 0 = the default 80 columns, 24 rows.</summary>
    public static Api.TtySpec ToTty(WindowSize? size, string field)
    {
        if (size is { Columns: < 0 } or { Rows: < 0 })
            throw GardenException.Invalid(field, $"{size.Columns} columns, {size.Rows} rows: a size cannot be negative");
        return new Api.TtySpec
        {
            Cols = size is { Columns: > 0 } ? (uint)size.Columns : DefaultColumns,
            Rows = size is { Rows: > 0 } ? (uint)size.Rows : DefaultRows,
        };
    }

    /// <summary>Garden's signals: 0 TERM, 1 KILL; null for any other number (Garden has no other).</summary>
    public static int? SignalNumber(int garden) => garden switch { 0 => 15, 1 => 9, _ => null };

    /// <summary>Garden's Attach delivers output produced from now on; ours replays what the agent still buffers from an
    /// offset. 0 = everything still buffered: a client attaching late sees what it missed rather than nothing (Garden's
    /// own suite accepts either; see the binding notes in the report of issue 12).</summary>
    public static Api.AttachRequest ToAttach(string handle, string processId) => new() { Handle = handle, ProcessId = processId, FromOffset = 0 };

    /// <summary>Go decodes a JSON null inside a []string as "".</summary>
    private static IEnumerable<string> Strings(List<string?>? list) => (list ?? []).Select(s => s ?? "");

    // ---------------------------------------------------------------- answers: protobuf → Garden JSON

    /// <summary>schedulable_disk_in_bytes is the disk (guardian's fallback when the image plugin cannot say).</summary>
    public static Capacity FromCapacity(Api.CapacityResponse c) => new()
    {
        MemoryInBytes = c.MemoryBytes, DiskInBytes = c.DiskBytes, SchedulableDiskInBytes = c.DiskBytes, MaxContainers = c.MaxContainers,
    };

    /// <summary>Our states are more than Garden's two: creating/active/stopping → "active", stopped → "stopped", the rest
    /// (destroying, broken) as they are.</summary>
    public static ContainerInfo FromInfo(Api.ContainerInfo i) => new()
    {
        State = i.State switch { "creating" or "active" or "stopping" => "active", var s => s },
        Events = [.. i.Events],
        HostIP = i.HostIp,
        ContainerIP = i.ContainerIp,
        ExternalIP = "",
        ContainerPath = i.ContainerPath,
        ProcessIDs = [.. i.ProcessIds],
        Properties = new SortedDictionary<string, string>(i.Properties, StringComparer.Ordinal),
        MappedPorts = [.. i.MappedPorts.Select(m => new PortMapping { HostPort = m.HostPort, ContainerPort = m.ContainerPort })],
    };

    public static SortedDictionary<string, ContainerInfoEntry> FromBulkInfo(Api.BulkInfoResponse r) => new(
        r.Infos.ToDictionary(e => e.Key, e => e.Value.Info is { } info && e.Value.Error.Length == 0
            ? new ContainerInfoEntry { Info = FromInfo(info) }
            : new ContainerInfoEntry { Err = GardenErrors.OfEntry(e.Value.Error.Length == 0 ? "no answer" : e.Value.Error) }),
        StringComparer.Ordinal);

    public static SortedDictionary<string, ContainerMetricsEntry> FromBulkMetrics(Api.BulkMetricsResponse r) => new(
        r.Metrics.ToDictionary(e => e.Key, e => e.Value.Metrics is { } m && e.Value.Error.Length == 0
            ? new ContainerMetricsEntry { Metrics = FromMetrics(m) }
            : new ContainerMetricsEntry { Err = GardenErrors.OfEntry(e.Value.Error.Length == 0 ? "no answer" : e.Value.Error) }),
        StringComparer.Ordinal);

    /// <summary>MemoryStat from memory.stat (cgroup v1 names; v2's anon/file/file_mapped fill rss/cache/mapped_file and,
    /// v2 being hierarchical, their total_ twins); TotalUsageTowardLimit = usage − total_inactive_file, as guardian
    /// computes it. Disk: exclusive = the container's writable layer, total = that and its image (the base rootfs). Age from whole
    /// seconds.</summary>
    public static Metrics FromMetrics(Api.ContainerMetrics m)
    {
        var s = m.MemoryStat;
        ulong Stat(string key, string? v2 = null) => s.TryGetValue(key, out var v) ? v : v2 is not null && s.TryGetValue(v2, out var w) ? w : 0;
        ulong Total(string key, string? v2 = null) => s.TryGetValue("total_" + key, out var v) ? v : Stat(key, v2);
        var inactiveFile = Total("inactive_file");
        return new Metrics
        {
            MemoryStat = new ContainerMemoryStat
            {
                ActiveAnon = Stat("active_anon"), ActiveFile = Stat("active_file"), Cache = Stat("cache", "file"),
                HierarchicalMemoryLimit = Stat("hierarchical_memory_limit"), InactiveAnon = Stat("inactive_anon"),
                InactiveFile = Stat("inactive_file"), MappedFile = Stat("mapped_file", "file_mapped"), Pgfault = Stat("pgfault"),
                Pgmajfault = Stat("pgmajfault"), Pgpgin = Stat("pgpgin"), Pgpgout = Stat("pgpgout"), Rss = Stat("rss", "anon"),
                TotalActiveAnon = Total("active_anon"), TotalActiveFile = Total("active_file"), TotalCache = Total("cache", "file"),
                TotalInactiveAnon = Total("inactive_anon"), TotalInactiveFile = inactiveFile,
                TotalMappedFile = Total("mapped_file", "file_mapped"), TotalPgfault = Total("pgfault"),
                TotalPgmajfault = Total("pgmajfault"), TotalPgpgin = Total("pgpgin"), TotalPgpgout = Total("pgpgout"),
                TotalRss = Total("rss", "anon"), TotalUnevictable = Total("unevictable"), Unevictable = Stat("unevictable"),
                Swap = Stat("swap"), HierarchicalMemswLimit = Stat("hierarchical_memsw_limit"), TotalSwap = Total("swap"),
                TotalUsageTowardLimit = m.MemoryUsageBytes > inactiveFile ? m.MemoryUsageBytes - inactiveFile : 0,
            },
            CPUStat = new ContainerCPUStat { Usage = m.CpuUsageNs, User = m.CpuUserNs, System = m.CpuSystemNs },
            DiskStat = new ContainerDiskStat { TotalBytesUsed = m.DiskTotalBytes, ExclusiveBytesUsed = m.DiskUsedBytes },
            NetworkStat = new ContainerNetworkStat { RxBytes = m.RxBytes, TxBytes = m.TxBytes },
            PidStat = new ContainerPidStat { Current = m.PidsCurrent, Max = m.PidsMax },
            Age = m.AgeSeconds > long.MaxValue / 1_000_000_000 ? long.MaxValue : (long)m.AgeSeconds * 1_000_000_000,
        };
    }

    public static BandwidthLimits FromBandwidth(Api.LimitsResponse r) => new()
    {
        RateInBytesPerSecond = r.Limits?.BandwidthRate ?? 0, BurstRateInBytesPerSecond = r.Limits?.BandwidthBurst ?? 0,
    };

    /// <summary>As limit_in_shares, the name Garden's clients (GATS among them) create with and compare against; weight
    /// stays unset (struct equality with what was created must hold).</summary>
    public static CPULimits FromCpu(Api.LimitsResponse r) => new() { LimitInShares = r.Limits?.CpuWeight ?? 0 };

    public static DiskLimits FromDisk(Api.LimitsResponse r) => new()
    {
        // a limit not given as total (gRPC's unspecified included) is exclusive: Garden's scope 1
        ByteHard = r.Limits?.DiskBytes ?? 0, Scope = (byte)(r.Limits is { DiskBytes: > 0, DiskScope: not Api.DiskScope.Total } ? 1 : 0),
    };

    public static MemoryLimits FromMemory(Api.LimitsResponse r) => new() { LimitInBytes = r.Limits?.MemoryBytes ?? 0 };

    public static NetInResponse FromNetIn(Api.NetInResponse r) => new() { HostPort = r.HostPort, ContainerPort = r.ContainerPort };
}
