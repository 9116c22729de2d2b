using Akka.Actor;
using Akka.Configuration;

namespace Garden.Actors;

/// <summary>The daemon's settings, read once from the `garden` HOCON section.</summary>
public sealed record GardenSettings(
    string StateDir,
    string DefaultRootfs,
    string AgentBinary,
    int MaxContainers,
    string CgroupParent,
    string RuncPath,
    string? RuncRoot,
    TimeSpan AgentStartTimeout,
    TimeSpan StopGrace,
    TimeSpan DestroyGrace,
    TimeSpan AskTimeout,
    TimeSpan RecoveryTimeout,
    bool DestroyContainersOnStart,
    int SnapshotEvery,
    string CrashAt,
    System.Collections.Immutable.ImmutableArray<RlimitSpec> DefaultRlimits)
{
    public FaultPoints Faults { get; } = new(CrashAt);

    public string JournalPath => Path.Combine(StateDir, "journal.db");

    public string DepotDir => Path.Combine(StateDir, "depot");

    public string DepotFor(string handle) => Path.Combine(DepotDir, handle);

    /// <summary>The embedded, commented defaults of this assembly.</summary>
    public static Config DefaultConfig()
    {
        using var stream = typeof(GardenSettings).Assembly.GetManifestResourceStream("Garden.Actors.reference.conf")
            ?? throw new InvalidOperationException("Garden.Actors.reference.conf is not embedded");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }

    public static GardenSettings Create(ActorSystem system) => Create(system.Settings.Config);

    public static GardenSettings Create(Config config)
    {
        var c = config.WithFallback(DefaultConfig()).GetConfig("garden");
        var root = c.GetString("runc.root");
        return new GardenSettings(
            StateDir: c.GetString("state-dir"),
            DefaultRootfs: c.GetString("default-rootfs"),
            AgentBinary: c.GetString("agent-binary"),
            MaxContainers: c.GetInt("max-containers"),
            CgroupParent: c.GetString("cgroup-parent"),
            RuncPath: c.GetString("runc.path"),
            RuncRoot: string.IsNullOrEmpty(root) ? null : root,
            AgentStartTimeout: c.GetTimeSpan("agent-start-timeout"),
            StopGrace: c.GetTimeSpan("stop-grace"),
            DestroyGrace: c.GetTimeSpan("destroy-grace"),
            AskTimeout: c.GetTimeSpan("ask-timeout"),
            RecoveryTimeout: c.GetTimeSpan("recovery-timeout"),
            DestroyContainersOnStart: c.GetBoolean("destroy-containers-on-start"),
            SnapshotEvery: c.GetInt("snapshot-every"),
            CrashAt: c.GetString("fault.crash-at", ""),
            DefaultRlimits: [.. c.GetConfig("default-rlimits").AsEnumerable()
                .Select(kv => new RlimitSpec(kv.Key, ulong.Parse(kv.Value.GetString()), ulong.Parse(kv.Value.GetString())))]);
    }
}
