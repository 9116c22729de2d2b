using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Garden.Linux.Network;
using Garden.Linux.UserNamespaces;

namespace Garden.Actors;

public sealed record ContainerSpec(
    string Handle,
    string Rootfs,
    ImmutableArray<string> Env,
    ImmutableDictionary<string, string> Properties,
    bool Privileged,
    Limits? Limits = null,
    string NetworkRequest = "",
    NetworkAllocation? Network = null,
    ImmutableArray<PortMapping> NetIn = default,
    ImmutableArray<NetOutRule> NetOut = default,
    ImmutableArray<BindMount> BindMounts = default,
    TimeSpan? GraceTime = null,
    IdMapping? UserNamespace = null)
{
    /// <summary>Made by a build before user namespaces and not privileged: it runs as host root all the same (it was
    /// made so), until destroyed.</summary>
    public bool EarlierHostRoot => !Privileged && UserNamespace is null;

    public Limits LimitsOrNone => Limits ?? Garden.Actors.Limits.None;
    public ImmutableArray<BindMount> BindMountsOrEmpty => BindMounts.IsDefault ? [] : BindMounts;
    public ImmutableArray<PortMapping> NetInOrEmpty => NetIn.IsDefault ? [] : NetIn;
    public ImmutableArray<NetOutRule> NetOutOrEmpty => NetOut.IsDefault ? [] : NetOut;
}

/// <summary>A host path mounted into the container at create (read-only unless asked otherwise by the caller).</summary>
public sealed record BindMount(string Source, string Destination, bool ReadOnly)
{
    /// <summary>Where no caller may mount: the container's kernel file systems, and the agent's own directory.</summary>
    private static readonly string[] Reserved = ["/proc", "/sys", "/dev", "/.garden"];

    /// <summary>What is wrong with this mount as an error naming the field and the value, or null. Checked before
    /// anything is made. <paramref name="resolve"/> gives a host path with its symlinks resolved, or null when it does not
    /// exist (a seam for tests); <paramref name="hostOnly"/> are the resolved paths only gardend may use (its state dir,
    /// its API socket, ...): a source that is one of them or inside one is refused, however it is spelled.</summary>
    public GardenException? Problem(int index, Func<string, string?> resolve, IReadOnlyCollection<string> hostOnly)
    {
        var field = $"bind mount {index + 1}";
        if (Source.Length == 0 || Source[0] != '/')
            return GardenException.Invalid($"{field} src", $"\"{Source}\" is not an absolute path on the host");
        if (Destination.Length == 0 || Destination[0] != '/')
            return GardenException.Invalid($"{field} dst", $"\"{Destination}\" is not an absolute path in the container");
        var dst = NormalDestination;
        if (dst == "/")
            return GardenException.Invalid($"{field} dst", $"\"{Destination}\" would hide the container's root");
        if (Reserved.FirstOrDefault(r => dst == r || dst.StartsWith(r + "/", StringComparison.Ordinal)) is { } reserved)
            return GardenException.Invalid($"{field} dst", $"\"{Destination}\" is inside {reserved}, which the container's own mounts own");
        if (resolve(Source) is not { } real)
            return GardenException.Invalid($"{field} src", $"\"{Source}\" does not exist on the host");
        if (hostOnly.FirstOrDefault(root => IsAtOrUnder(real, root)) is { } forbidden)
            return GardenException.Invalid($"{field} src", $"\"{Source}\"{(real == Source ? "" : $" (that is {real})")} is " +
                $"{(real == forbidden ? "" : "inside ")}{forbidden}, which only gardend may use: a container must not reach the daemon's state, journal or sockets");
        return null;
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="root"/> or below it (both absolute and resolved).</summary>
    public static bool IsAtOrUnder(string path, string root)
    {
        var r = root.Length > 1 ? root.TrimEnd('/') : root;
        return path == r || path.StartsWith(r == "/" ? "/" : r + "/", StringComparison.Ordinal);
    }

    /// <summary>The destination with "..", "." and repeated slashes resolved (lexically: it names a path in the container).</summary>
    public string NormalDestination => Path.GetFullPath(Destination);

}

/// <summary>A container's place on the network, given by the host's pool: its subnet (the gateway is the first address)
/// and its address.</summary>
public sealed record NetworkAllocation(Ipv4Cidr Subnet, Ipv4 Address)
{
    public Ipv4 Gateway => Subnet.Gateway;
    public override string ToString() => $"{Address} in {Subnet}";
}

/// <summary>A container's resource limits; null = not limited (in a live change: leave as is).</summary>
public sealed record Limits(ulong? MemoryBytes = null, ulong? CpuWeight = null, double? CpuQuota = null, ulong? Pids = null, ulong? DiskBytes = null,
    ulong? BandwidthRate = null, ulong? BandwidthBurst = null)
{
    public static readonly Limits None = new();

    public const ulong MinMemory = 4UL << 20, MaxMemory = 64UL << 40;
    public const ulong MinDisk = 16UL << 20, MaxDisk = 64UL << 40;
    public const ulong MaxPids = 4_194_304;
    public const ulong MinCpuWeight = 2, MaxCpuWeight = 262_144;
    public const double MaxCpuQuota = 1024;
    public const ulong MinBandwidth = 1024, MaxBandwidth = 100UL << 30;

    public bool IsEmpty => this == None;

    /// <summary>The first value out of range, as an error naming the field and the value; null when all are fine.</summary>
    public GardenException? Problem()
    {
        static string Size(ulong b) => b >= 1UL << 30 && b % (1UL << 30) == 0 ? $"{b >> 30} GiB" : b >= 1UL << 20 ? $"{b / (double)(1 << 20):0.##} MiB" : $"{b} bytes";
        if (MemoryBytes is { } m && (m < MinMemory || m > MaxMemory))
            return GardenException.Invalid("memory", $"{Size(m)} is out of range ({Size(MinMemory)} to {Size(MaxMemory)}: a container needs a few MiB to start)");
        if (DiskBytes is { } d && (d < MinDisk || d > MaxDisk))
            return GardenException.Invalid("disk", $"{Size(d)} is out of range ({Size(MinDisk)} to {Size(MaxDisk)})");
        if (Pids is { } p && (p < 1 || p > MaxPids))
            return GardenException.Invalid("pids", $"{p} is out of range (1 to {MaxPids})");
        if (CpuWeight is { } w && (w < MinCpuWeight || w > MaxCpuWeight))
            return GardenException.Invalid("cpu weight", $"{w} is out of range ({MinCpuWeight} to {MaxCpuWeight})");
        if (CpuQuota is { } q && (!double.IsFinite(q) || q <= 0 || q > MaxCpuQuota))
            return GardenException.Invalid("cpu quota", $"{q} is out of range (more than 0, at most {MaxCpuQuota} CPUs)");
        if (BandwidthRate is { } r && (r < MinBandwidth || r > MaxBandwidth))
            return GardenException.Invalid("bandwidth", $"a rate of {r} bytes/s is out of range ({MinBandwidth} bytes/s to {Size(MaxBandwidth)}/s)");
        if (BandwidthBurst is { } b && BandwidthRate is null)
            return GardenException.Invalid("bandwidth", $"a burst ({b} bytes) needs a rate");
        if (BandwidthBurst is { } b2 && (b2 < 2048 || b2 > 1UL << 30))
            return GardenException.Invalid("bandwidth", $"a burst of {b2} bytes is out of range (2048 bytes to 1 GiB)");
        return null;
    }

    /// <summary>These limits with every field <paramref name="change"/> sets replaced.</summary>
    public Limits With(Limits change) => new(change.MemoryBytes ?? MemoryBytes, change.CpuWeight ?? CpuWeight,
        change.CpuQuota ?? CpuQuota, change.Pids ?? Pids, change.DiskBytes ?? DiskBytes,
        change.BandwidthRate ?? BandwidthRate, change.BandwidthRate is null ? BandwidthBurst : change.BandwidthBurst);

    /// <summary>The bandwidth limit for the kernel (a burst of an eighth of a second's worth, at least 64 KiB, when none
    /// was asked for), or null when not limited.</summary>
    public Bandwidth? ToBandwidth() => BandwidthRate is { } rate
        ? new Bandwidth(rate, BandwidthBurst ?? Math.Max(rate / 8, 64UL << 10))
        : null;

    public Garden.Linux.Cgroups.ResourceLimits ToCgroup() => new(MemoryBytes, CpuWeight, CpuQuota, Pids);
}

public sealed record RlimitSpec(string Name, ulong Soft, ulong Hard);

public sealed record TtySize(uint Rows, uint Cols);

public sealed record ProcessSpec(
    string Id,
    string Path,
    ImmutableArray<string> Args,
    ImmutableArray<string> Env,
    string Dir,
    string User,
    ImmutableArray<RlimitSpec> Rlimits,
    TtySize? Tty);

public enum ContainerLifecycle { Creating, Active, Stopping, Stopped, Destroying, Destroyed, Broken }

/// <summary>Names: handles become hostnames, directory names and actor names; process ids become actor names. One
/// validator for every entry (create, run, attach, signal, ...): the whole string must match (<c>\A...\z</c>: .NET's
/// <c>$</c> also matches before a final newline, which once let "evil\n" into the journal), and every valid name is a
/// valid Akka actor name.</summary>
public static partial class Names
{
    public const int MaxLength = 128;

    [GeneratedRegex(@"\A[A-Za-z0-9][A-Za-z0-9._-]*\z")]
    private static partial Regex NamePattern();

    /// <summary>Null when valid, else why not.</summary>
    public static string? Problem(string name)
    {
        if (name.Length == 0) return "must not be empty";
        if (name.Length > MaxLength) return $"is {name.Length} characters long (max {MaxLength})";
        if (!NamePattern().IsMatch(name) || !Akka.Actor.ActorPath.IsValidPathElement(name))
            return "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit";
        return null;
    }

    public static void Validate(string field, string name)
    {
        var problem = Problem(name);
        if (problem is not null) throw GardenException.Invalid(field, $"{Quote(name)} {problem}");
    }

    /// <summary>A name as a C#-style quoted string with control characters escaped (\n, \u0000), for error messages and
    /// logs: a name that is not valid may hold anything.</summary>
    public static string Quote(string name)
    {
        var b = new System.Text.StringBuilder(name.Length + 2).Append('"');
        foreach (var c in name)
            b.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        return b.Append('"').ToString();
    }

    /// <summary>An actor name for any string, never throwing: the name itself when it is valid, else "_" followed by its
    /// UTF-8 bytes with everything but letters, digits, '.' and '-' percent-encoded. A valid name starts with a letter or
    /// digit, so the two never meet, and the encoding is one-to-one. (A handle an earlier build let into the journal
    /// still gets an actor, which reports itself broken and can be destroyed.)</summary>
    public static string ActorName(string name)
    {
        if (Problem(name) is null) return name;
        var b = new System.Text.StringBuilder("_");
        foreach (var by in System.Text.Encoding.UTF8.GetBytes(name))
        {
            var c = (char)by;
            if (c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '-') b.Append(c);
            else b.Append('%').Append(by.ToString("X2"));
        }
        return b.ToString();
    }

    /// <summary>A fresh name: 11 lowercase letters and digits (hostname-safe).</summary>
    public static string Generate()
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        Span<char> chars = stackalloc char[11];
        for (var i = 0; i < chars.Length; i++) chars[i] = alphabet[RandomNumberGenerator.GetInt32(i == 0 ? 26 : alphabet.Length)];
        return new string(chars);
    }
}

/// <summary>Grace time: how long a container may stay idle before it is destroyed. Zero = never.</summary>
public static class GraceTime
{
    /// <summary>The longest a timer can wait (int.MaxValue ms, about 24.8 days).</summary>
    public static readonly TimeSpan Max = TimeSpan.FromMilliseconds(int.MaxValue);

    public static GardenException? Problem(TimeSpan t) =>
        t < TimeSpan.Zero || t > Max
            ? GardenException.Invalid("grace time", $"{t.TotalMilliseconds:0} ms is out of range (0 = never, at most {Max.TotalMilliseconds:0} ms, about 24 days)")
            : null;

    public static string Describe(TimeSpan t) => t == TimeSpan.Zero ? "never" : t.ToString();
}
