namespace Garden.Cli.Args;

/// <summary>Options that apply to every command.</summary>
public sealed record GlobalOptions(string? Socket, bool Json);

/// <summary>A parsed command line: the global options and one command.</summary>
public sealed record Invocation(GlobalOptions Globals, CliCommand Command);

/// <summary>One parsed command. Plain data: turning it into protobuf requests is the command handlers' job.</summary>
public abstract record CliCommand(string Name);

public sealed record HelpCommand(string? Topic) : CliCommand("help");
/// <summary><c>garden --version</c>: this client's version; <c>garden version</c> (<paramref name="Server"/>): also gardend's, asked over the API.</summary>
public sealed record VersionCommand(bool Server = false) : CliCommand("version");
public sealed record PingCommand() : CliCommand("ping");
public sealed record CapacityCommand() : CliCommand("capacity");

/// <summary>Limits as given on the command line; null = not given.</summary>
public sealed record LimitArgs(ulong? Memory = null, ulong? CpuWeight = null, double? CpuQuota = null, ulong? Pids = null, ulong? Disk = null,
    BandwidthArg? Bandwidth = null)
{
    public bool Any => this != new LimitArgs();
}

public sealed record CreateCommand(
    string? Handle,
    string? Rootfs,
    IReadOnlyList<string> Env,
    IReadOnlyDictionary<string, string> Properties,
    bool Privileged,
    LimitArgs? Limits = null,
    string? Network = null,
    IReadOnlyList<PortMappingArg>? NetIn = null,
    IReadOnlyList<BindMountArg>? BindMounts = null,
    TimeSpan? GraceTime = null,
    string? Image = null) : CliCommand("create");

/// <summary>garden grace-time HANDLE DURATION (zero = never reaped).</summary>
public sealed record GraceTimeCommand(string Handle, TimeSpan GraceTime) : CliCommand("grace-time");

/// <summary>garden events [HANDLE]: Handle null = every container.</summary>
public sealed record EventsCommand(string? Handle) : CliCommand("events");

public sealed record LimitCommand(string Handle, LimitArgs Limits) : CliCommand("limit");
public sealed record MetricsCommand(string Handle) : CliCommand("metrics");

public sealed record NetInCommand(string Handle, PortMappingArg Mapping) : CliCommand("net-in");

/// <summary>One net-out rule: Networks empty = anywhere; Ports (tcp/udp only) empty = every port; Icmp (icmp only) null = every type.</summary>
public sealed record NetOutRuleArg(
    NetProtocol Protocol,
    IReadOnlyList<IpRangeArg> Networks,
    IReadOnlyList<PortRangeArg> Ports,
    IcmpArg? Icmp,
    bool Log);

public sealed record NetOutCommand(string Handle, NetOutRuleArg Rule) : CliCommand("net-out");

public sealed record ListCommand(IReadOnlyDictionary<string, string> Properties) : CliCommand("list");
public sealed record InfoCommand(string Handle) : CliCommand("info");
public sealed record DestroyCommand(IReadOnlyList<string> Handles) : CliCommand("destroy");
public sealed record StopCommand(string Handle, bool Kill) : CliCommand("stop");

public sealed record RunCommand(
    string Handle,
    string? Id,
    string? User,
    string? Dir,
    IReadOnlyList<string> Env,
    IReadOnlyList<RlimitArg> Rlimits,
    bool Tty,
    bool Detach,
    string Path,
    IReadOnlyList<string> Args) : CliCommand("run")
{
    /// <summary>A pea's image (a host directory), or null.</summary>
    public string? Image { get; init; }

    /// <summary>A pea's own memory limit (its own cgroup), or null: it shares its container's limits.</summary>
    public ulong? PeaMemory { get; init; }
}

public sealed record AttachCommand(string Handle, string ProcessId, ulong FromOffset) : CliCommand("attach");
public sealed record SignalCommand(string Handle, string ProcessId, int Signal) : CliCommand("signal");

public enum PropertyAction { List, Get, Set, Remove }
public sealed record PropertyCommand(string Handle, PropertyAction Action, string? Key = null, string? Value = null)
    : CliCommand("property");

/// <summary>stream-in: the tar on garden's stdin is extracted into Dest (created if missing) as User (null = root).</summary>
public sealed record StreamInCommand(string Handle, string Dest, string? User) : CliCommand("stream-in");

/// <summary>stream-out: a tar of Path (`dir` with dir/ itself, `dir/` only its contents) on garden's stdout.</summary>
public sealed record StreamOutCommand(string Handle, string Path, string? User) : CliCommand("stream-out");
