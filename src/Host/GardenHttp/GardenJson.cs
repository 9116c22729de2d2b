using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Garden.Host.GardenHttp;

// Garden's JSON types (code.cloudfoundry.org/garden: client.go, container.go, net_in.go, net_out_rule.go, errors.go,
// transport/payload.go), with Go's names and Go's encoding/json semantics:
//  - a field tagged `omitempty` is left out when it is 0, "", false, nil or empty (here: [WhenWritingDefault] on numbers
//    and bools, a null string/list that the converter leaves null when empty);
//  - a struct-typed field is always written, omitempty or not (here: non-null records with `= new()`);
//  - a pointer to a zero value IS written (here: nullable numbers: `"exit_status":0`, `"signal":0`, `"source":0`);
//  - a field without a tag has the Go field name (State, HostIP, ProcessIDs, TotalUsageTowardLimit ...);
//  - uint64 are integers up to 2^64-1 (ulong, never a double); time.Duration is int64 nanoseconds (long);
//  - reading matches keys case-insensitively, ignores unknown keys and takes `null` for a list/map/object as absent.
// Properties are declared in Go's field order, so what is written is byte for byte what Go's encoder writes
// (tests/Garden.GardenHttp.Tests compares with JSON produced by the Go types themselves).

/// <summary>garden.ContainerSpec, Create's request body.</summary>
public sealed record ContainerSpec
{
    [JsonPropertyName("handle")] public string? Handle { get; init; }
    /// <summary>time.Duration: nanoseconds; 0 = the server's default.</summary>
    [JsonPropertyName("grace_time")] public long GraceTime { get; init; }
    [JsonPropertyName("rootfs")] public string? RootFSPath { get; init; }
    [JsonPropertyName("image")] public ImageRef? Image { get; init; }
    [JsonPropertyName("bind_mounts")] public List<BindMount?>? BindMounts { get; init; }
    [JsonPropertyName("network")] public string? Network { get; init; }
    [JsonPropertyName("properties")] public Dictionary<string, string?>? Properties { get; init; }
    [JsonPropertyName("env")] public List<string?>? Env { get; init; }
    [JsonPropertyName("privileged")] public bool Privileged { get; init; }
    [JsonPropertyName("limits")] public Limits? Limits { get; init; }
    [JsonPropertyName("netout_rules")] public List<NetOutRule?>? NetOut { get; init; }
    [JsonPropertyName("netin")] public List<NetIn?>? NetIn { get; init; }
}

public sealed record ImageRef
{
    [JsonPropertyName("uri")] public string? URI { get; init; }
    [JsonPropertyName("username")] public string? Username { get; init; }
    [JsonPropertyName("password")] public string? Password { get; init; }
}

public sealed record BindMount
{
    [JsonPropertyName("src_path")] public string? SrcPath { get; init; }
    [JsonPropertyName("dst_path")] public string? DstPath { get; init; }
    /// <summary>0 read-only, 1 read-write.</summary>
    [JsonPropertyName("mode")] public byte Mode { get; init; }
    /// <summary>0 a host path, 1 a path in the container.</summary>
    [JsonPropertyName("origin")] public byte Origin { get; init; }
}

public sealed record Limits
{
    [JsonPropertyName("bandwidth_limits")] public BandwidthLimits? Bandwidth { get; init; }
    [JsonPropertyName("cpu_limits")] public CPULimits? CPU { get; init; }
    [JsonPropertyName("disk_limits")] public DiskLimits? Disk { get; init; }
    [JsonPropertyName("memory_limits")] public MemoryLimits? Memory { get; init; }
    [JsonPropertyName("pid_limits")] public PidLimits? Pid { get; init; }
}

public sealed record BandwidthLimits
{
    [JsonPropertyName("rate")] public ulong RateInBytesPerSecond { get; init; }
    [JsonPropertyName("burst")] public ulong BurstRateInBytesPerSecond { get; init; }
}

public sealed record CPULimits
{
    [JsonPropertyName("weight")] public ulong Weight { get; init; }
    /// <summary>The deprecated name of Weight; GATS and older clients send this one.</summary>
    [JsonPropertyName("limit_in_shares")] public ulong LimitInShares { get; init; }
}

public sealed record DiskLimits
{
    [JsonPropertyName("inode_soft")] public ulong InodeSoft { get; init; }
    [JsonPropertyName("inode_hard")] public ulong InodeHard { get; init; }
    [JsonPropertyName("byte_soft")] public ulong ByteSoft { get; init; }
    [JsonPropertyName("byte_hard")] public ulong ByteHard { get; init; }
    /// <summary>0 total (the image counts), 1 exclusive (only what the container wrote).</summary>
    [JsonPropertyName("scope")] public byte Scope { get; init; }
}

public sealed record MemoryLimits
{
    [JsonPropertyName("limit_in_bytes")] public ulong LimitInBytes { get; init; }
}

public sealed record PidLimits
{
    [JsonPropertyName("max")] public ulong Max { get; init; }
}

/// <summary>garden.NetIn (Create's "netin"): no omitempty, both keys always written.</summary>
public sealed record NetIn
{
    [JsonPropertyName("host_port"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public uint HostPort { get; init; }
    [JsonPropertyName("container_port"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public uint ContainerPort { get; init; }
}

public sealed record NetOutRule
{
    /// <summary>0 all, 1 tcp, 2 udp, 3 icmp.</summary>
    [JsonPropertyName("protocol")] public byte Protocol { get; init; }
    [JsonPropertyName("networks")] public List<IPRange?>? Networks { get; init; }
    [JsonPropertyName("ports")] public List<PortRange?>? Ports { get; init; }
    /// <summary>Absent = every ICMP type.</summary>
    [JsonPropertyName("icmps")] public ICMPControl? ICMPs { get; init; }
    [JsonPropertyName("log")] public bool Log { get; init; }
}

public sealed record IPRange
{
    [JsonPropertyName("start")] public string? Start { get; init; }
    [JsonPropertyName("end")] public string? End { get; init; }
}

public sealed record PortRange
{
    [JsonPropertyName("start")] public ushort Start { get; init; }
    [JsonPropertyName("end")] public ushort End { get; init; }
}

public sealed record ICMPControl
{
    [JsonPropertyName("type")] public byte Type { get; init; }
    /// <summary>A pointer in Go: absent = every code, 0 = code 0.</summary>
    [JsonPropertyName("code")] public byte? Code { get; init; }
}

/// <summary>transport.NetInRequest (its handle is the route's; the body's is ignored).</summary>
public sealed record NetInRequest
{
    [JsonPropertyName("handle")] public string? Handle { get; init; }
    [JsonPropertyName("host_port")] public uint HostPort { get; init; }
    [JsonPropertyName("container_port")] public uint ContainerPort { get; init; }
}

public sealed record NetInResponse
{
    [JsonPropertyName("host_port")] public uint HostPort { get; init; }
    [JsonPropertyName("container_port")] public uint ContainerPort { get; init; }
}

/// <summary>Stop's body, <c>{"kill":bool}</c> (a Go map: always written).</summary>
public sealed record StopRequest
{
    [JsonPropertyName("kill"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public bool Kill { get; init; }
}

/// <summary>Property's answer and SetProperty's body, <c>{"value":"…"}</c> (a Go map: always written).</summary>
public sealed record PropertyValue
{
    [JsonPropertyName("value"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string? Value { get; init; }
}

/// <summary>garden.ProcessSpec, Run's request body.</summary>
public sealed record ProcessSpec
{
    [JsonPropertyName("id")] public string? ID { get; init; }
    [JsonPropertyName("path")] public string? Path { get; init; }
    [JsonPropertyName("args")] public List<string?>? Args { get; init; }
    [JsonPropertyName("env")] public List<string?>? Env { get; init; }
    [JsonPropertyName("dir")] public string? Dir { get; init; }
    [JsonPropertyName("user")] public string? User { get; init; }
    [JsonPropertyName("rlimits")] public ResourceLimits? Limits { get; init; }
    /// <summary>A pointer: absent = share the container's limits (only meaningful for a process with its own image).</summary>
    [JsonPropertyName("limits")] public ProcessLimits? OverrideContainerLimits { get; init; }
    /// <summary>A pointer: absent = no terminal; <c>{}</c> = a terminal of the default size.</summary>
    [JsonPropertyName("tty")] public TTYSpec? TTY { get; init; }
    /// <summary>A non-empty uri makes the process a "pea": its own root filesystem and mount namespace.</summary>
    [JsonPropertyName("image")] public ImageRef? Image { get; init; }
    [JsonPropertyName("bind_mounts")] public List<BindMount?>? BindMounts { get; init; }
}

/// <summary>garden.ResourceLimits: each a *uint64, absent = not set; soft and hard limit alike.</summary>
public sealed record ResourceLimits
{
    [JsonPropertyName("as")] public ulong? As { get; init; }
    [JsonPropertyName("core")] public ulong? Core { get; init; }
    [JsonPropertyName("cpu")] public ulong? Cpu { get; init; }
    [JsonPropertyName("data")] public ulong? Data { get; init; }
    [JsonPropertyName("fsize")] public ulong? Fsize { get; init; }
    [JsonPropertyName("locks")] public ulong? Locks { get; init; }
    [JsonPropertyName("memlock")] public ulong? Memlock { get; init; }
    [JsonPropertyName("msgqueue")] public ulong? Msgqueue { get; init; }
    [JsonPropertyName("nice")] public ulong? Nice { get; init; }
    [JsonPropertyName("nofile")] public ulong? Nofile { get; init; }
    [JsonPropertyName("nproc")] public ulong? Nproc { get; init; }
    [JsonPropertyName("rss")] public ulong? Rss { get; init; }
    [JsonPropertyName("rtprio")] public ulong? Rtprio { get; init; }
    [JsonPropertyName("sigpending")] public ulong? Sigpending { get; init; }
    [JsonPropertyName("stack")] public ulong? Stack { get; init; }
}

public sealed record ProcessLimits
{
    [JsonPropertyName("cpu_limits")] public CPULimits? CPU { get; init; }
    [JsonPropertyName("memory_limits")] public MemoryLimits? Memory { get; init; }
}

public sealed record TTYSpec
{
    [JsonPropertyName("window_size")] public WindowSize? WindowSize { get; init; }
}

public sealed record WindowSize
{
    [JsonPropertyName("columns")] public int Columns { get; init; }
    [JsonPropertyName("rows")] public int Rows { get; init; }
}

/// <summary>transport.ProcessPayload: one JSON object per line on a Run/Attach connection, both ways. Every key is
/// omitempty, and all but the ids are pointers, so a present 0 means something: TERM, stdin, exit status 0.</summary>
public sealed record ProcessPayload
{
    [JsonPropertyName("process_id")] public string? ProcessID { get; init; }
    [JsonPropertyName("stream_id")] public string? StreamID { get; init; }
    /// <summary>0 stdin, 1 stdout, 2 stderr. From a client only stdin: with data = bytes, without = end of stdin.</summary>
    [JsonPropertyName("source")] public int? Source { get; init; }
    [JsonPropertyName("data")] public string? Data { get; init; }
    [JsonPropertyName("exit_status")] public int? ExitStatus { get; init; }
    [JsonPropertyName("error")] public string? Error { get; init; }
    [JsonPropertyName("tty")] public TTYSpec? TTY { get; init; }
    /// <summary>0 TERM, 1 KILL.</summary>
    [JsonPropertyName("signal")] public int? Signal { get; init; }
}

public sealed record Capacity
{
    [JsonPropertyName("memory_in_bytes")] public ulong MemoryInBytes { get; init; }
    [JsonPropertyName("disk_in_bytes")] public ulong DiskInBytes { get; init; }
    [JsonPropertyName("schedulable_disk_in_bytes")] public ulong SchedulableDiskInBytes { get; init; }
    [JsonPropertyName("max_containers")] public ulong MaxContainers { get; init; }
}

/// <summary>Create's answer: guardian writes <c>struct{ Handle string }</c>.</summary>
public sealed record CreateResponse
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string Handle { get; init; } = "";
}

/// <summary>List's answer: always an array, never null.</summary>
public sealed record ListResponse
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public List<string> Handles { get; init; } = [];
}

/// <summary>An empty JSON object, what every call without an answer of its own gets (an empty body is an error to the client).</summary>
public sealed record Empty
{
    public static readonly Empty Instance = new();
}

/// <summary>garden.ContainerInfo: no json tags, nothing omitted; nil lists are <c>null</c>.</summary>
public sealed record ContainerInfo
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string State { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public List<string>? Events { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string HostIP { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string ContainerIP { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string ExternalIP { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string ContainerPath { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public List<string>? ProcessIDs { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public SortedDictionary<string, string>? Properties { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public List<PortMapping>? MappedPorts { get; init; }
}

public sealed record PortMapping
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public uint HostPort { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public uint ContainerPort { get; init; }
}

public sealed record ContainerInfoEntry
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ContainerInfo Info { get; init; } = new();
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public GardenError? Err { get; init; }
}

/// <summary>garden.Metrics: no omitempty anywhere; NetworkStat is a pointer (null without a network).</summary>
public sealed record Metrics
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ContainerMemoryStat MemoryStat { get; init; } = new();
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ContainerCPUStat CPUStat { get; init; } = new();
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ContainerDiskStat DiskStat { get; init; } = new();
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ContainerNetworkStat? NetworkStat { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ContainerPidStat PidStat { get; init; } = new();
    /// <summary>time.Duration: nanoseconds since the container was created.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public long Age { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong CPUEntitlement { get; init; }
}

/// <summary>garden.ContainerMemoryStat: cgroup v1 memory.stat names, and TotalUsageTowardLimit (untagged).</summary>
public sealed record ContainerMemoryStat
{
    [JsonPropertyName("active_anon"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong ActiveAnon { get; init; }
    [JsonPropertyName("active_file"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong ActiveFile { get; init; }
    [JsonPropertyName("cache"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Cache { get; init; }
    [JsonPropertyName("hierarchical_memory_limit"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong HierarchicalMemoryLimit { get; init; }
    [JsonPropertyName("inactive_anon"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong InactiveAnon { get; init; }
    [JsonPropertyName("inactive_file"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong InactiveFile { get; init; }
    [JsonPropertyName("mapped_file"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong MappedFile { get; init; }
    [JsonPropertyName("pgfault"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Pgfault { get; init; }
    [JsonPropertyName("pgmajfault"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Pgmajfault { get; init; }
    [JsonPropertyName("pgpgin"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Pgpgin { get; init; }
    [JsonPropertyName("pgpgout"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Pgpgout { get; init; }
    [JsonPropertyName("rss"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Rss { get; init; }
    [JsonPropertyName("total_active_anon"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalActiveAnon { get; init; }
    [JsonPropertyName("total_active_file"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalActiveFile { get; init; }
    [JsonPropertyName("total_cache"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalCache { get; init; }
    [JsonPropertyName("total_inactive_anon"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalInactiveAnon { get; init; }
    [JsonPropertyName("total_inactive_file"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalInactiveFile { get; init; }
    [JsonPropertyName("total_mapped_file"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalMappedFile { get; init; }
    [JsonPropertyName("total_pgfault"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalPgfault { get; init; }
    [JsonPropertyName("total_pgmajfault"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalPgmajfault { get; init; }
    [JsonPropertyName("total_pgpgin"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalPgpgin { get; init; }
    [JsonPropertyName("total_pgpgout"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalPgpgout { get; init; }
    [JsonPropertyName("total_rss"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalRss { get; init; }
    [JsonPropertyName("total_unevictable"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalUnevictable { get; init; }
    [JsonPropertyName("unevictable"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Unevictable { get; init; }
    [JsonPropertyName("swap"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Swap { get; init; }
    [JsonPropertyName("hierarchical_memsw_limit"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong HierarchicalMemswLimit { get; init; }
    [JsonPropertyName("total_swap"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalSwap { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalUsageTowardLimit { get; init; }
}

public sealed record ContainerCPUStat
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Usage { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong User { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong System { get; init; }
}

public sealed record ContainerDiskStat
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalBytesUsed { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TotalInodesUsed { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong ExclusiveBytesUsed { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong ExclusiveInodesUsed { get; init; }
}

public sealed record ContainerNetworkStat
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong RxBytes { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong TxBytes { get; init; }
}

public sealed record ContainerPidStat
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Current { get; init; }
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public ulong Max { get; init; }
}

public sealed record ContainerMetricsEntry
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public Metrics Metrics { get; init; } = new();
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public GardenError? Err { get; init; }
}

/// <summary>garden.Error as its MarshalJSON writes it: these five keys, always. The client rebuilds a typed Go error from
/// Type (and Handle or ProcessID for the two not-found errors, whose Message it ignores).</summary>
public sealed record GardenError
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string Type { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string Message { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string Handle { get; init; } = "";
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string ProcessID { get; init; } = "";
    /// <summary>Never filled by Garden's marshaller.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)] public string Binary { get; init; } = "";
}

/// <summary>Source-generated (reflection-free, trim- and AOT-safe) serialization of every Garden type. Everything not
/// marked otherwise is omitted at its default, as `omitempty` does.</summary>
[JsonSourceGenerationOptions(
    PropertyNameCaseInsensitive = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingDefault,
    NumberHandling = JsonNumberHandling.Strict,
    ReadCommentHandling = JsonCommentHandling.Disallow,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    MaxDepth = 32)]
[JsonSerializable(typeof(ContainerSpec))]
[JsonSerializable(typeof(ProcessSpec))]
[JsonSerializable(typeof(ProcessPayload))]
[JsonSerializable(typeof(NetOutRule))]
[JsonSerializable(typeof(List<NetOutRule?>))]
[JsonSerializable(typeof(NetInRequest))]
[JsonSerializable(typeof(NetInResponse))]
[JsonSerializable(typeof(StopRequest))]
[JsonSerializable(typeof(PropertyValue))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(Capacity))]
[JsonSerializable(typeof(CreateResponse))]
[JsonSerializable(typeof(ListResponse))]
[JsonSerializable(typeof(Empty))]
[JsonSerializable(typeof(ContainerInfo))]
[JsonSerializable(typeof(SortedDictionary<string, ContainerInfoEntry>))]
[JsonSerializable(typeof(Metrics))]
[JsonSerializable(typeof(SortedDictionary<string, ContainerMetricsEntry>))]
[JsonSerializable(typeof(BandwidthLimits))]
[JsonSerializable(typeof(CPULimits))]
[JsonSerializable(typeof(DiskLimits))]
[JsonSerializable(typeof(MemoryLimits))]
[JsonSerializable(typeof(SortedDictionary<string, string>))]
[JsonSerializable(typeof(GardenError))]
public sealed partial class GardenJsonContext : JsonSerializerContext
{
    /// <summary>The context to use: the generated one, writing strings the way Go does apart from HTML escaping (Go's
    /// <c>\u003c</c> for &lt; and the like; both are valid JSON, any parser reads either). The default encoder would
    /// write every non-ASCII character and even a quote or an apostrophe as <c>\uXXXX</c>: correct, but unreadable
    /// in an error message.</summary>
    public static GardenJsonContext Wire => WireHolder.Instance;

    // a class of its own: the generated Default is a static of this class initialized after any static declared here
    private static class WireHolder
    {
        public static readonly GardenJsonContext Instance = new(new JsonSerializerOptions(Default.Options)
        {
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            TypeInfoResolver = null,
        });
    }
}
