using Akka.Actor;
using Akka.Configuration;
using Garden.Linux.Network;

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
    TimeSpan RecoveryTimeout,
    bool DestroyContainersOnStart,
    int SnapshotEvery,
    string CrashAt,
    System.Collections.Immutable.ImmutableArray<RlimitSpec> DefaultRlimits,
    NetworkSettings Network,
    TimeSpan DefaultGraceTime = default,
    TimeSpan AgentCallTimeout = default,
    string MountDir = "/run/garden-actors/mounts",
    UserNamespaceSettings? UserNamespaces = null)
{
    public FaultPoints Faults { get; } = new(CrashAt);

    /// <summary>The limits a Create gets for each of memory, pids and disk it names none of (garden.default-limits).</summary>
    public Limits DefaultLimits { get; init; } = Limits.None;

    /// <summary>At most one "out of memory" journal record and event per container per this interval; the kills in between
    /// are counted into the next one (garden.oom-event-interval).</summary>
    public TimeSpan OomEventInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>What a container's cgroup (agent and processes) may use beyond the memory limit asked, which is on its
    /// processes' own cgroup (garden.agent-memory-allowance).</summary>
    public ulong AgentMemoryAllowance { get; init; } = 32UL << 20;

    /// <summary>gardend's API socket (garden.gateway.socket), when it has one: no bind mount may expose it.</summary>
    public string ApiSocket { get; init; } = "";

    /// <summary>garden.warm-pool.size: containers of the default shape gardend keeps made ahead (0 = none), for the Creates
    /// that can be served by one (HostState.PoolProblem).</summary>
    public int WarmPoolSize { get; init; }

    /// <summary>garden.warm-pool.refill-delay: how long the host waits, with no user's Create or Destroy in flight,
    /// before it makes the next pool entry (0 = at once).</summary>
    public TimeSpan WarmPoolRefillDelay { get; init; }

    /// <summary>garden.warm-pool.quiet-period: how long after a user's Create, Run, Destroy, Stop, limits or net-out request
    /// the pool still yields (no entry started, one being made paused at its next step). 0 = only while one is in flight.</summary>
    public TimeSpan WarmPoolQuietPeriod { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>garden.image-store.max-bytes: above it, layers no container holds are removed (least recently used first).</summary>
    public ulong ImageStoreMaxBytes { get; init; } = 10UL << 30;

    /// <summary>garden.registry.insecure: registry hosts (host or host:port) fetched over plain HTTP.</summary>
    public System.Collections.Immutable.ImmutableArray<string> InsecureRegistries { get; init; } = [];

    /// <summary>garden.registry.stall-timeout: a registry that sends nothing this long fails the pull.</summary>
    public TimeSpan RegistryStallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Where the image store keeps its layers: &lt;state-dir&gt;/images.</summary>
    public string ImageStoreDir => Path.Combine(StateDir, "images");

    /// <summary>Host paths only gardend may use, so no bind mount source may be one of them or inside one: the state dir
    /// (journal, depot, the agents' sockets), the containers' root mount points and the API socket.</summary>
    public IReadOnlyList<string> HostOnlyPaths =>
        ApiSocket.Length == 0 ? [StateDir, MountDir] : [StateDir, MountDir, ApiSocket];

    /// <summary><see cref="HostOnlyPaths"/> as the host resolves them (<paramref name="resolve"/>: realpath, null when
    /// a path does not exist yet, which then counts as spelled).</summary>
    public List<string> ResolvedHostOnlyPaths(Func<string, string?> resolve) =>
        HostOnlyPaths.Select(p => resolve(p) ?? Path.GetFullPath(p)).ToList();

    public string JournalPath => Path.Combine(StateDir, "journal.db");

    /// <summary>The agent binary peas run: gardend's copy of <see cref="AgentBinary"/> that no container can read
    /// (<see cref="Garden.Linux.Runtime.PeaAgentBinary"/>), made at each start.</summary>
    public string PeaAgentBinary => Path.Combine(StateDir, "pea-agent");

    public string DepotDir => Path.Combine(StateDir, "depot");

    public string DepotFor(string handle) => Path.Combine(DepotDir, handle);

    /// <summary>Where the container's root is mounted: <c>&lt;mount-dir&gt;/&lt;handle&gt;</c> (see garden.mount-dir).</summary>
    public string MountDirFor(string handle) => Path.Combine(MountDir, handle);

    public UserNamespaceSettings UserNamespace => UserNamespaces ?? UserNamespaceSettings.Default;

    /// <summary>The embedded, commented defaults of this assembly.</summary>
    public static Config DefaultConfig()
    {
        using var stream = typeof(GardenSettings).Assembly.GetManifestResourceStream("Garden.Actors.reference.conf")
            ?? throw new InvalidOperationException("Garden.Actors.reference.conf is not embedded");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }

    public static GardenSettings Create(ActorSystem system) => Create(system.Settings.Config);

    private static TimeSpan DefaultGrace(Config c)
    {
        var t = c.GetTimeSpan("default-grace-time", TimeSpan.Zero);
        if (GraceTime.Problem(t) is { } problem) throw new ConfigurationException($"garden.default-grace-time: {problem.Message}");
        return t;
    }

    private static TimeSpan PositiveTime(Config c, string key)
    {
        var t = c.GetTimeSpan(key);
        if (t <= TimeSpan.Zero || t > TimeSpan.FromHours(1)) throw new ConfigurationException($"garden.{key}: {t} is out of range (more than 0, at most 1h)");
        return t;
    }

    private static string MountDirOf(Config c)
    {
        var dir = c.GetString("mount-dir", "");
        if (dir.Length == 0 || dir[0] != '/') throw new ConfigurationException($"garden.mount-dir: \"{dir}\" is not an absolute path");
        return Path.TrimEndingDirectorySeparator(dir);
    }

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
            RecoveryTimeout: c.GetTimeSpan("recovery-timeout"),
            DestroyContainersOnStart: c.GetBoolean("destroy-containers-on-start"),
            SnapshotEvery: c.GetInt("snapshot-every"),
            CrashAt: c.GetString("fault.crash-at", ""),
            DefaultRlimits: DefaultRlimitsOf(c),
            Network: NetworkSettings.From(c.GetConfig("network")),
            DefaultGraceTime: DefaultGrace(c),
            AgentCallTimeout: PositiveTime(c, "agent-call-timeout"),
            MountDir: MountDirOf(c),
            UserNamespaces: UserNamespaceSettings.From(c.GetConfig("user-namespace")))
        {
            DefaultLimits = DefaultLimitsOf(c),
            OomEventInterval = PositiveTime(c, "oom-event-interval"),
            AgentMemoryAllowance = AllowanceOf(c),
            ImageStoreMaxBytes = ImageStoreMaxOf(c),
            InsecureRegistries = [.. c.GetStringList("registry.insecure") ?? []],
            RegistryStallTimeout = PositiveTime(c, "registry.stall-timeout"),
            ApiSocket = c.GetString("gateway.socket", ""),
            WarmPoolSize = WarmPoolSizeOf(c),
            WarmPoolRefillDelay = c.GetTimeSpan("warm-pool.refill-delay", TimeSpan.Zero),
            WarmPoolQuietPeriod = c.GetTimeSpan("warm-pool.quiet-period", TimeSpan.FromMilliseconds(50)),
        };
    }

    private static int WarmPoolSizeOf(Config c)
    {
        var n = c.GetInt("warm-pool.size", 0);
        if (n is < 0 or > 64) throw new ConfigurationException($"garden.warm-pool.size: {n} is not between 0 and 64");
        return n;
    }

    /// <summary>garden.default-rlimits: NAME = N (soft and hard), each checked as a Run's own rlimits are.</summary>
    private static System.Collections.Immutable.ImmutableArray<RlimitSpec> DefaultRlimitsOf(Config c) =>
    [
        .. c.GetConfig("default-rlimits").AsEnumerable().Select(kv =>
        {
            var text = kv.Value.GetString();
            if (!ulong.TryParse(text, System.Globalization.NumberStyles.None, null, out var n))
                throw new ConfigurationException($"garden.default-rlimits.{kv.Key}: \"{text}\" is not a number");
            var r = new RlimitSpec(kv.Key, n, n);
            if (RlimitNames.Problem(r) is { } problem) throw new ConfigurationException($"garden.default-rlimits.{kv.Key}: {problem.Message}");
            return r;
        }),
    ];

    /// <summary>garden.image-store.max-bytes: a size (0 = keep no layer that no container holds).</summary>
    private static ulong ImageStoreMaxOf(Config c)
    {
        const string path = "image-store.max-bytes";
        try
        {
            if (c.GetByteSize(path) is { } b and >= 0) return (ulong)b;
        }
        catch (Exception e) when (e is FormatException or ConfigurationException or OverflowException or ArgumentException) { }
        throw new ConfigurationException($"garden.{path}: \"{c.GetString(path)}\" is not a size (e.g. 10G, or 0)");
    }

    /// <summary>garden.agent-memory-allowance: a size of at least 8M (the agent alone is about 6 MiB resident).</summary>
    private static ulong AllowanceOf(Config c)
    {
        const string path = "agent-memory-allowance";
        long? bytes;
        try
        {
            bytes = c.GetByteSize(path);
        }
        catch (Exception e) when (e is FormatException or ConfigurationException or OverflowException or ArgumentException)
        {
            bytes = null;
        }
        if (bytes is null or < 8L << 20 or > 1L << 40)
            throw new ConfigurationException($"garden.{path}: \"{c.GetString(path)}\" is not a size from 8M to 1T (e.g. 32M)");
        return (ulong)bytes;
    }

    /// <summary>garden.default-limits: memory and disk are sizes (512M, 1G), pids a count; 0 = no default for that one.
    /// Each is checked against the same ranges as a Create's own limits.</summary>
    private static Limits DefaultLimitsOf(Config c)
    {
        ulong? Size(string key)
        {
            var path = $"default-limits.{key}";
            long? bytes;
            try
            {
                bytes = c.GetByteSize(path);
            }
            catch (Exception e) when (e is FormatException or ConfigurationException or OverflowException or ArgumentException)
            {
                throw new ConfigurationException($"garden.{path}: \"{c.GetString(path)}\" is not a size (e.g. 512M, 1G; 0 = none)");
            }
            if (bytes is null or < 0) throw new ConfigurationException($"garden.{path}: \"{c.GetString(path)}\" is not a size (e.g. 512M, 1G; 0 = none)");
            return bytes == 0 ? null : (ulong)bytes;
        }
        var pidsText = c.GetString("default-limits.pids");
        if (!ulong.TryParse(pidsText, System.Globalization.NumberStyles.None, null, out var pids))
            throw new ConfigurationException($"garden.default-limits.pids: \"{pidsText}\" is not a count (0 = none)");
        var limits = new Limits(MemoryBytes: Size("memory"), Pids: pids == 0 ? null : pids, DiskBytes: Size("disk"));
        if (limits.Problem() is { } problem) throw new ConfigurationException($"garden.default-limits.{problem.Message}");
        return limits;
    }
}

/// <summary>The `garden.network` section: pools, names, and what every container may reach.</summary>
public sealed record NetworkSettings(
    bool Enabled,
    string Prefix,
    Ipv4Cidr Pool,
    int PortPoolStart,
    int PortPoolSize,
    int Mtu,
    System.Collections.Immutable.ImmutableArray<string> DnsServers,
    System.Collections.Immutable.ImmutableArray<Ipv4Range> AllowNetworks,
    System.Collections.Immutable.ImmutableArray<Ipv4Range> DenyNetworks)
{
    /// <summary>How many containers the subnet pool holds (one /30 each).</summary>
    public int PoolCapacity => (int)Math.Min(int.MaxValue, Pool.Size / 4);

    public FirewallOptions Firewall => new(Prefix, AllowNetworks, DenyNetworks, Pool);

    public ContainerNetwork For(string handle, NetworkAllocation a) => new(handle, Prefix, a.Subnet, a.Address, Mtu);

    public static NetworkSettings From(Config c)
    {
        string Bad(string key, string why) => throw new ConfigurationException($"garden.network.{key}: {why}");
        var prefix = c.GetString("prefix");
        if (ContainerNetwork.PrefixProblem(prefix) is { } p) Bad("prefix", p);
        Ipv4Cidr pool = default;
        try
        {
            var (subnet, address) = Ipv4Cidr.Parse(c.GetString("pool"), "pool");
            if (address is not null) Bad("pool", $"\"{c.GetString("pool")}\" has host bits set; give the network address");
            if (subnet.PrefixLength > 30) Bad("pool", "must hold at least one /30");
            pool = subnet;
        }
        catch (NetworkSpecException e) { Bad("pool", e.Problem); }
        var start = c.GetInt("port-pool.start");
        var size = c.GetInt("port-pool.size");
        if (start < 1 || size < 1 || start + size - 1 > 65535) Bad("port-pool", $"{start} + {size} ports do not fit in 1..65535");
        var mtu = c.GetInt("mtu");
        if (mtu is < 576 or > 65535) Bad("mtu", $"{mtu} is out of range (576 to 65535)");
        System.Collections.Immutable.ImmutableArray<Ipv4Range> Ranges(string key)
        {
            try { return [.. (c.GetStringList(key) ?? []).Select(r => Ipv4Range.Parse(r, key))]; }
            catch (NetworkSpecException e) { Bad(key, e.Problem); return []; }
        }
        var dns = (c.GetStringList("dns-servers") ?? []).ToList();
        foreach (var d in dns) if (!Ipv4.TryParse(d, out _)) Bad("dns-servers", $"\"{d}\" is not an IPv4 address");
        return new NetworkSettings(c.GetBoolean("enabled"), prefix, pool, start, size, mtu, [.. dns], Ranges("allow-networks"), Ranges("deny-networks"));
    }
}

/// <summary>How an unprivileged container's ids map to the host's (<c>garden.user-namespace</c>).</summary>
public enum UserNamespaceMode
{
    /// <summary>Garden's: container root is the host's 4294967294, every other id is itself.</summary>
    Garden,

    /// <summary>A range of 65536 host ids of its own per container, from a pool the host journals.</summary>
    PerContainer,
}

/// <summary>The `garden.user-namespace` section.</summary>
/// <param name="Spares">User namespace holders started ahead for the next Creates (HolderUserNamespaces), 0 for none.</param>
public sealed record UserNamespaceSettings(UserNamespaceMode Mapping, uint FirstHostId, int Ranges, int Spares = 2)
{
    public const uint RangeSize = Linux.UserNamespaces.IdMapping.PerContainerSize;

    public static readonly UserNamespaceSettings Default = new(UserNamespaceMode.Garden, 0x7000_0000, 4096);

    public static UserNamespaceSettings From(Config c)
    {
        string Bad(string key, string why) => throw new ConfigurationException($"garden.user-namespace.{key}: {why}");
        var mode = c.GetString("mapping", "garden") switch
        {
            "garden" => UserNamespaceMode.Garden,
            "per-container" => UserNamespaceMode.PerContainer,
            var other => throw new ConfigurationException($"garden.user-namespace.mapping: \"{other}\" is neither \"garden\" nor \"per-container\""),
        };
        var first = c.GetLong("per-container.first-host-id", Default.FirstHostId);
        var ranges = c.GetLong("per-container.ranges", Default.Ranges);
        if (first < 65536 || first % RangeSize != 0)
            Bad("per-container.first-host-id", $"{first} must be a multiple of {RangeSize}, at least {RangeSize} (ids below are the host's own users)");
        if (ranges < 1 || ranges > int.MaxValue) Bad("per-container.ranges", $"{ranges} is out of range (at least 1)");
        // The namespaces' owners (from 0xFFE00000), Garden's container root (4294967294) and the invalid id 4294967295
        // stay outside every range.
        if (first + ranges * RangeSize > Linux.UserNamespaces.NamespaceOwners.First)
            Bad("per-container", $"{ranges} ranges of {RangeSize} from {first} run past {Linux.UserNamespaces.NamespaceOwners.First - 1} " +
                $"(the ids from {Linux.UserNamespaces.NamespaceOwners.First} own the containers' user namespaces)");
        var spares = c.GetLong("spares", Default.Spares);
        if (spares < 0 || spares > 64) Bad("spares", $"{spares} is out of range (0-64)");
        return new UserNamespaceSettings(mode, (uint)first, (int)ranges, (int)spares);
    }
}
