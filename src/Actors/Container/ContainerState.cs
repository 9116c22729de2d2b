using System.Collections.Immutable;
using Garden.Linux.Network;
using Garden.Linux.UserNamespaces;
using Garden.Protocol.Journal;
using Google.Protobuf;

namespace Garden.Actors.Container;

/// <summary>The pure state of one container: the fold of its journaled events (journal.proto), and its decisions
/// (<see cref="Decide"/>, in ContainerDecisions.cs). The actor persists, applies, replies.</summary>
public sealed partial record ContainerState(
    string Handle,
    ContainerSpec? Spec,
    string Rootfs,
    ContainerLifecycle Lifecycle,
    ImmutableDictionary<string, string> Properties,
    ImmutableList<string> Events,
    Limits Limits,
    long CreatedUnixMs,
    ImmutableList<PortMapping> NetIn,
    ImmutableList<NetOutRule> NetOut,
    TimeSpan GraceTime = default,
    ulong OomKills = 0,
    long LastOomUnixMs = 0,
    ContainerImage? Image = null)
{
    /// <summary>Garden's event text, once in Events however many kills there were (clients match it exactly); how many
    /// and when the last one was are <see cref="OomKills"/> and <see cref="LastOomUnixMs"/>.</summary>
    public const string OutOfMemoryEvent = "out of memory";

    public static ContainerState Empty(string handle) => new(handle, null, "", ContainerLifecycle.Creating,
        ImmutableDictionary<string, string>.Empty, ImmutableList<string>.Empty, Limits.None, 0, [], []);

    /// <summary>What its decisions take from the daemon's settings (not journaled: the actor sets it).</summary>
    public ContainerDefaults Defaults { get; init; } = ContainerDefaults.None;

    /// <summary>The container's network, or null when it has none (network disabled, or created before networks).</summary>
    public NetworkAllocation? Network => Spec?.Network;

    public ContainerState Apply(IMessage evt) => evt switch
    {
        CreateStarted c => this with
        {
            Spec = FromRecord(c.Spec), Properties = c.Spec.Properties.ToImmutableDictionary(), Lifecycle = ContainerLifecycle.Creating,
            Limits = FromRecord(c.Spec.Limits),
            NetIn = [.. c.Spec.NetIn.Select(FromRecord)], NetOut = [.. c.Spec.NetOut.Select(FromRecord)],
            GraceTime = TimeSpan.FromMilliseconds(c.Spec.GraceTimeMs),
        },
        GraceTimeChanged g => this with { GraceTime = TimeSpan.FromMilliseconds(g.GraceTimeMs) },
        NetInAdded n => this with { NetIn = NetIn.Add(FromRecord(n.Mapping)) },
        NetOutAdded n => this with { NetOut = NetOut.AddRange(n.Rules.Select(FromRecord)) },
        CreateCompleted c => this with { Rootfs = c.RootfsMount, Lifecycle = ContainerLifecycle.Active, CreatedUnixMs = c.CreatedUnixMs, Image = ContainerImage.From(c.Image) },
        LimitsChanged l => this with { Limits = FromRecord(l.Limits) },
        OutOfMemory o => this with
        {
            // the cgroup's own count when it was read; else the kills this record covers (one per record of earlier builds)
            OomKills = Math.Max(OomKills + Math.Max(o.Kills, 1), o.OomKills),
            LastOomUnixMs = Math.Max(LastOomUnixMs, o.AtUnixMs),
            Events = Events.Contains(OutOfMemoryEvent) ? Events : Events.Add(OutOfMemoryEvent),
        },
        PropertySet p => this with { Properties = Properties.SetItem(p.Key, p.Value) },
        PropertyRemoved r => this with { Properties = Properties.Remove(r.Key) },
        LifecycleChanged l => this with
        {
            Lifecycle = (ContainerLifecycle)(int)l.State,
            Events = string.IsNullOrEmpty(l.Note) ? Events : Events.Add(l.Note),
        },
        Reconciled => this,
        ContainerSnapshot s => this with
        {
            Spec = s.Spec is null ? null : FromRecord(s.Spec), Rootfs = s.RootfsMount, Lifecycle = (ContainerLifecycle)(int)s.Lifecycle,
            Properties = s.Properties.ToImmutableDictionary(), Limits = FromRecord(s.Limits),
            // earlier builds kept one "out of memory" per kill: one entry, and the count
            Events = [.. s.Events.Where((e, i) => e != OutOfMemoryEvent || s.Events.IndexOf(e) == i)],
            OomKills = Math.Max(s.OomKills, (ulong)s.Events.Count(e => e == OutOfMemoryEvent)),
            LastOomUnixMs = s.LastOomUnixMs,
            CreatedUnixMs = s.CreatedUnixMs,
            NetIn = [.. s.NetIn.Select(FromRecord)], NetOut = [.. s.NetOut.Select(FromRecord)],
            GraceTime = TimeSpan.FromMilliseconds(s.GraceTimeMs),
            Image = ContainerImage.From(s.Image),
        },
        _ => throw new ArgumentOutOfRangeException(nameof(evt), evt.GetType().Name, "unknown container event"),
    };

    public ContainerSnapshot ToSnapshot()
    {
        var s = new ContainerSnapshot
        {
            RootfsMount = Rootfs, Lifecycle = (Lifecycle)(int)Lifecycle, Limits = ToRecord(Limits), CreatedUnixMs = CreatedUnixMs,
            GraceTimeMs = (ulong)GraceTime.TotalMilliseconds, OomKills = OomKills, LastOomUnixMs = LastOomUnixMs,
        };
        if (Spec is not null) s.Spec = ToRecord(Spec);
        if (Image is not null) s.Image = Image.ToRecord();
        s.Properties.Add(Properties);
        s.Events.AddRange(Events);
        s.NetIn.AddRange(NetIn.Select(ToRecord));
        s.NetOut.AddRange(NetOut.Select(ToRecord));
        return s;
    }

    public static LifecycleChanged Changed(ContainerLifecycle state, string? note = null) =>
        new() { State = (Lifecycle)(int)state, Note = note ?? "" };

    public static ContainerSpecRecord ToRecord(ContainerSpec spec)
    {
        var r = new ContainerSpecRecord { Handle = spec.Handle, Rootfs = spec.Rootfs, Privileged = spec.Privileged, Limits = ToRecord(spec.LimitsOrNone) };
        r.Env.AddRange(spec.Env);
        r.Properties.Add(spec.Properties);
        if (spec.Network is not null) r.Network = Host.HostState.ToRecord(spec.Network);
        r.NetIn.AddRange(spec.NetInOrEmpty.Select(ToRecord));
        r.NetOut.AddRange(spec.NetOutOrEmpty.Select(ToRecord));
        r.BindMounts.AddRange(spec.BindMountsOrEmpty.Select(b => new BindMountRecord { Src = b.Source, Dst = b.Destination, ReadOnly = b.ReadOnly }));
        r.GraceTimeMs = (ulong)(spec.GraceTime ?? TimeSpan.Zero).TotalMilliseconds;
        if (spec.UserNamespace is { } userns) r.UserNamespace = ToRecord(userns);
        return r;
    }

    public static UserNamespaceRecord ToRecord(IdMapping m)
    {
        var r = new UserNamespaceRecord();
        r.UidMap.AddRange(m.Uids.Select(ToRecord));
        r.GidMap.AddRange(m.Gids.Select(ToRecord));
        return r;
    }

    private static IdMapRecord ToRecord(IdRange r) => new() { ContainerId = r.ContainerId, HostId = r.HostId, Size = r.Size };

    public static IdMapping FromRecord(UserNamespaceRecord r) =>
        new([.. r.UidMap.Select(FromRecord)], [.. r.GidMap.Select(FromRecord)]);

    private static IdRange FromRecord(IdMapRecord r) => new(r.ContainerId, r.HostId, r.Size);

    public static ContainerSpec FromRecord(ContainerSpecRecord r) =>
        new(r.Handle, r.Rootfs, [.. r.Env], r.Properties.ToImmutableDictionary(), r.Privileged, FromRecord(r.Limits),
            Network: r.Network is null ? null : Host.HostState.FromRecord(r.Network),
            NetIn: [.. r.NetIn.Select(FromRecord)], NetOut: [.. r.NetOut.Select(FromRecord)],
            BindMounts: [.. r.BindMounts.Select(b => new BindMount(b.Src, b.Dst, b.ReadOnly))],
            GraceTime: TimeSpan.FromMilliseconds(r.GraceTimeMs),
            UserNamespace: r.UserNamespace is null ? null : FromRecord(r.UserNamespace));

    public static LimitsRecord ToRecord(Limits l) => new()
    {
        MemoryBytes = l.MemoryBytes ?? 0, CpuWeight = l.CpuWeight ?? 0, CpuQuota = l.CpuQuota ?? 0, Pids = l.Pids ?? 0, DiskBytes = l.DiskBytes ?? 0,
        BandwidthRate = l.BandwidthRate ?? 0, BandwidthBurst = l.BandwidthBurst ?? 0, DiskScope = l.DiskScope switch { DiskScope.Total => 1u, DiskScope.Exclusive => 2u, _ => 0u },
    };

    public static Limits FromRecord(LimitsRecord? r) => r is null ? Limits.None : new(
        r.MemoryBytes == 0 ? null : r.MemoryBytes, r.CpuWeight == 0 ? null : r.CpuWeight, r.CpuQuota == 0 ? null : r.CpuQuota,
        r.Pids == 0 ? null : r.Pids, r.DiskBytes == 0 ? null : r.DiskBytes,
        r.BandwidthRate == 0 ? null : r.BandwidthRate, r.BandwidthBurst == 0 ? null : r.BandwidthBurst,
        r.DiskScope switch { 1 => DiskScope.Total, 2 => DiskScope.Exclusive, _ => null });

    public static PortMappingRecord ToRecord(PortMapping m) => new() { HostPort = (uint)m.HostPort, ContainerPort = (uint)m.ContainerPort };

    public static PortMapping FromRecord(PortMappingRecord r) => new((int)r.HostPort, (int)r.ContainerPort);

    public static NetOutRuleRecord ToRecord(NetOutRule rule)
    {
        var r = new NetOutRuleRecord { Protocol = (int)rule.Protocol, Log = rule.Log };
        r.Networks.AddRange(rule.Networks.Select(n => $"{n.Start}-{n.End}"));
        r.Ports.AddRange(rule.Ports.Select(p => $"{p.Start}-{p.End}"));
        if (rule.IcmpType is { } t) r.IcmpType = t;
        if (rule.IcmpCode is { } c) r.IcmpCode = c;
        return r;
    }

    public static NetOutRule FromRecord(NetOutRuleRecord r) => new(
        (NetProtocol)r.Protocol,
        [.. r.Networks.Select(n => Ipv4Range.Parse(n, "network"))],
        [.. r.Ports.Select(p => p.Split('-')).Select(p => new PortRange(int.Parse(p[0]), int.Parse(p[1])))],
        r.HasIcmpType ? r.IcmpType : null, r.HasIcmpCode ? r.IcmpCode : null, r.Log);

    /// <summary>What a restarted daemon must do with a container, given its journal alone.</summary>
    public RecoveryPlan PlanRecovery() => (Spec, Lifecycle) switch
    {
        // registered, and its CreateStarted not in the journal: its kernel work starts beside that write, so some of it
        // may have been made (under its name: the undo needs nothing of the spec; the host releases its network after)
        (null, ContainerLifecycle.Destroyed) => RecoveryPlan.Release,
        (null, _) => RecoveryPlan.Undo,
        (_, ContainerLifecycle.Creating) => RecoveryPlan.Undo,      // died mid-create: undo whatever was made
        (_, ContainerLifecycle.Destroying) => RecoveryPlan.Undo,    // died mid-destroy: finish it
        (_, ContainerLifecycle.Destroyed) => RecoveryPlan.Release,
        _ => RecoveryPlan.Reconcile,
    };

    public static string Describe(ContainerLifecycle l) => l.ToString().ToLowerInvariant();
}

public enum RecoveryPlan { Reconcile, Undo, Release }

/// <summary>The image a container was made from: its reference and manifest digest, and its config's defaults (Env,
/// WorkingDir, User for every Run; Entrypoint and Cmd shown in Info).</summary>
public sealed record ContainerImage(string Reference, string Digest, ImmutableArray<string> Env, string WorkingDir, string User,
    ImmutableArray<string> Entrypoint, ImmutableArray<string> Cmd)
{
    public static ContainerImage? From(ImageRecord? r) => r is null ? null
        : new(r.Reference, r.ManifestDigest, [.. r.Env], r.WorkingDir, r.User, [.. r.Entrypoint], [.. r.Cmd]);

    public ImageRecord ToRecord()
    {
        var r = new ImageRecord { Reference = Reference, ManifestDigest = Digest, WorkingDir = WorkingDir, User = User };
        r.Env.AddRange(Env);
        r.Entrypoint.AddRange(Entrypoint);
        r.Cmd.AddRange(Cmd);
        return r;
    }

    /// <summary>Info's properties for it (read-only: not stored among the container's own).</summary>
    public IEnumerable<KeyValuePair<string, string>> InfoProperties()
    {
        yield return new("garden.image.reference", Reference);
        yield return new("garden.image.digest", Digest);
        yield return new("garden.image.entrypoint", System.Text.Json.JsonSerializer.Serialize(Entrypoint.ToArray()));
        yield return new("garden.image.cmd", System.Text.Json.JsonSerializer.Serialize(Cmd.ToArray()));
        if (WorkingDir.Length > 0) yield return new("garden.image.working-dir", WorkingDir);
        if (User.Length > 0) yield return new("garden.image.user", User);
    }
}
