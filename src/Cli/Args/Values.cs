namespace Garden.Cli.Args;

/// <summary>One rlimit as the CLI received it; Name is the OCI form (RLIMIT_NOFILE).</summary>
public sealed record RlimitArg(string Name, ulong Soft, ulong Hard);

/// <summary>A bandwidth limit: Rate in bytes per second, Burst in bytes (0 = the daemon's default).</summary>
public sealed record BandwidthArg(ulong Rate, ulong Burst);

/// <summary>A host path mounted into the container; read-only unless ":rw" was given (Garden's default).</summary>
public sealed record BindMountArg(string Source, string Destination, bool ReadOnly);

/// <summary>A host port (0 = one from the daemon's pool) forwarded to a container port.</summary>
public sealed record PortMappingArg(uint HostPort, uint ContainerPort);

/// <summary>Ports Start to End inclusive; End 0 = Start only.</summary>
public sealed record PortRangeArg(uint Start, uint End);

/// <summary>Addresses as given: Start is an IP or a CIDR (End empty), or Start-End inclusive.</summary>
public sealed record IpRangeArg(string Start, string End);

public enum NetProtocol { All, Tcp, Udp, Icmp }

/// <summary>An ICMP type and code (-1 = every code).</summary>
public sealed record IcmpArg(uint Type, int Code);

/// <summary>Parsers for flag values: syntax only. Every error names the flag and echoes what was received. Whether a value
/// that reads well is in range (ports, limits, prefix lengths, rlimit names, signal numbers, grace time) is the daemon's to
/// say: it answers InvalidArgument naming the field, which garden prints. What is refused here cannot be put on the wire
/// as meant: not a number, not an address, or 0 where the API reads 0 as "not set".</summary>
public static class Values
{
    public const ulong Unlimited = ulong.MaxValue;   // RLIM_INFINITY

    /// <summary>K=V with a non-empty K; V may be empty and may contain '='.</summary>
    public static KeyValuePair<string, string> KeyValue(string flag, string text)
    {
        int eq = text.IndexOf('=');
        if (eq < 0) throw new UsageException($"{flag} expects KEY=VALUE, got '{text}'");
        if (eq == 0) throw new UsageException($"{flag} expects KEY=VALUE with a non-empty KEY, got '{text}'");
        return new(text[..eq], text[(eq + 1)..]);
    }

    /// <summary>NAME=N or NAME=SOFT:HARD; NAME as nofile, NOFILE or RLIMIT_NOFILE (sent as RLIMIT_NOFILE; which names exist
    /// is the daemon's to say); N may be 'unlimited'.</summary>
    public static RlimitArg Rlimit(string flag, string text)
    {
        if (text.IndexOf('=') <= 0)
            throw new UsageException($"{flag} expects NAME=N or NAME=SOFT:HARD, got '{text}'");
        var kv = KeyValue(flag, text);
        var name = kv.Key.ToUpperInvariant();
        if (name.StartsWith("RLIMIT_", StringComparison.Ordinal)) name = name["RLIMIT_".Length..];
        if (name.Length == 0 || !name.All(c => char.IsAsciiLetterUpper(c) || c == '_'))
            throw new UsageException($"{flag}: '{kv.Key}' in '{text}' is not an rlimit name (nofile, nproc, core, ...)");

        var value = kv.Value;
        ulong soft, hard;
        int colon = value.IndexOf(':');
        if (colon < 0)
        {
            soft = hard = RlimitValue(flag, text, value);
        }
        else
        {
            soft = RlimitValue(flag, text, value[..colon]);
            hard = RlimitValue(flag, text, value[(colon + 1)..]); // soft above hard is the daemon's to refuse
        }
        return new RlimitArg("RLIMIT_" + name, soft, hard);
    }

    private static ulong RlimitValue(string flag, string whole, string value)
    {
        if (value.Equals("unlimited", StringComparison.OrdinalIgnoreCase) ||
            value.Equals("infinity", StringComparison.OrdinalIgnoreCase) ||
            value.Equals("inf", StringComparison.OrdinalIgnoreCase))
            return Unlimited;
        if (ulong.TryParse(value, System.Globalization.NumberStyles.None, null, out var n)) return n;
        throw new UsageException($"{flag} expects NAME=N or NAME=SOFT:HARD (N a number or 'unlimited'), got '{whole}'");
    }

    public static ulong UInt64(string flag, string text)
    {
        if (ulong.TryParse(text, System.Globalization.NumberStyles.None, null, out var n)) return n;
        throw new UsageException($"{flag} expects a non-negative number, got '{text}'");
    }

    /// <summary>A size in bytes: N, or N with K, M, G or T (powers of 1024; "64M", "1.5G", "512KiB", "2GB").</summary>
    public static ulong Size(string flag, string text) => ReadSize(text, out var bytes) switch
    {
        SizeProblem.None => bytes,
        SizeProblem.OutOfRange => throw new UsageException($"{flag}: the size '{text}' is out of range"),
        _ => throw new UsageException($"{flag}: cannot read the size '{text}' (a number, optionally with K, M, G or T: 64M, 1G)"),
    };

    private enum SizeProblem { None, Unreadable, OutOfRange }

    private static SizeProblem ReadSize(string text, out ulong bytes)
    {
        bytes = 0;
        var t = text.Trim();
        int end = 0;
        while (end < t.Length && (char.IsAsciiDigit(t[end]) || t[end] == '.')) end++;
        var unit = t[end..].ToUpperInvariant();
        if (unit.EndsWith('B')) unit = unit[..^1];
        if (unit.EndsWith('I')) unit = unit[..^1];
        ulong scale = unit switch
        {
            "" => 1, "K" => 1UL << 10, "M" => 1UL << 20, "G" => 1UL << 30, "T" => 1UL << 40,
            _ => 0,
        };
        if (scale == 0 || end == 0 || !decimal.TryParse(t[..end], System.Globalization.NumberStyles.AllowDecimalPoint,
                System.Globalization.CultureInfo.InvariantCulture, out var number))
            return SizeProblem.Unreadable;
        decimal exact;
        try { exact = number * scale; }
        catch (OverflowException) { return SizeProblem.OutOfRange; }
        if (exact < 1 || exact > ulong.MaxValue) return SizeProblem.OutOfRange;
        bytes = (ulong)exact;
        return SizeProblem.None;
    }

    /// <summary>RATE[:BURST]: sizes as for <see cref="Size"/>; RATE in bytes per second; BURST omitted = 0 (the daemon's default).</summary>
    public static BandwidthArg Bandwidth(string flag, string text)
    {
        var parts = text.Split(':');
        if (parts.Length > 2)
            throw new UsageException($"{flag} expects RATE[:BURST] (sizes such as 1M or 512K; RATE per second), got '{text}'");
        var rate = BandwidthPart(flag, text, "rate", parts[0]);
        var burst = parts.Length == 2 ? BandwidthPart(flag, text, "burst", parts[1]) : 0;
        return new BandwidthArg(rate, burst);
    }

    private static ulong BandwidthPart(string flag, string whole, string what, string part) => ReadSize(part, out var bytes) switch
    {
        SizeProblem.None => bytes,
        SizeProblem.OutOfRange => throw new UsageException($"{flag}: the {what} '{part}'{In(part, whole)} is out of range"),
        _ => throw new UsageException(
            $"{flag}: cannot read the {what} '{part}'{In(part, whole)} (RATE[:BURST], each a number optionally with K, M, G or T: 1M, 1M:256K)"),
    };

    /// <summary>" in 'WHOLE'" when an error names a part of a value, so the value as given is named too.</summary>
    private static string In(string part, string whole) => part == whole ? "" : $" in '{whole}'";

    /// <summary>HOST:CONTAINER, two port numbers (HOST 0 = one from the daemon's pool).</summary>
    public static PortMappingArg PortMapping(string flag, string text, string form = "HOST:CONTAINER")
    {
        var parts = text.Split(':');
        if (parts.Length != 2 || !uint.TryParse(parts[0], System.Globalization.NumberStyles.None, null, out var host)
            || !uint.TryParse(parts[1], System.Globalization.NumberStyles.None, null, out var container))
            throw new UsageException($"{flag} expects {form} (two port numbers; host port 0 = one from the pool), got '{text}'");
        return new PortMappingArg(host, container);
    }

    /// <summary>P or P-Q, port numbers. A single port has End 0.</summary>
    public static PortRangeArg PortRange(string flag, string text)
    {
        var parts = text.Split('-');
        if (parts.Length > 2 || parts.Any(p => !uint.TryParse(p, System.Globalization.NumberStyles.None, null, out _)))
            throw new UsageException($"{flag} expects a port P or a range P-Q, got '{text}'");
        var ports = parts.Select(p => uint.Parse(p, System.Globalization.NumberStyles.None)).ToArray();
        return new PortRangeArg(ports[0], ports.Length == 2 ? ports[1] : 0);
    }

    /// <summary>An IP address, a CIDR (ADDRESS/N) or a range A-B. The text is passed on as given: a CIDR or a single address
    /// in Start with End empty, a range split into Start and End.</summary>
    public static IpRangeArg IpRange(string flag, string text)
    {
        string Form() => $"{flag} expects an IP address, a CIDR such as 10.0.0.0/24, or a range A-B, got '{text}'";
        int dash = text.IndexOf('-');
        if (dash >= 0)
        {
            if (!TryIp(text[..dash], out _) || !TryIp(text[(dash + 1)..], out _)) throw new UsageException(Form());
            return new IpRangeArg(text[..dash], text[(dash + 1)..]);
        }
        int slash = text.IndexOf('/');
        if (slash >= 0 && (!TryIp(text[..slash], out _)
                           || !int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None, null, out _)))
            throw new UsageException(Form());
        if (slash < 0 && !TryIp(text, out _)) throw new UsageException(Form());
        return new IpRangeArg(text, "");
    }

    /// <summary>Dotted IPv4 with exactly four decimal parts (not the shorthand forms IPAddress also reads), or IPv6.</summary>
    private static bool TryIp(string text, out System.Net.IPAddress address)
    {
        address = System.Net.IPAddress.None;
        if (text.Contains(':'))
            return System.Net.IPAddress.TryParse(text, out address!) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        var parts = text.Split('.');
        if (parts.Length != 4 || parts.Any(p => p.Length is 0 or > 3 || !byte.TryParse(p, System.Globalization.NumberStyles.None, null, out _)))
            return false;
        address = new System.Net.IPAddress(parts.Select(p => byte.Parse(p, System.Globalization.NumberStyles.None)).ToArray());
        return true;
    }

    /// <summary>all, tcp, udp or icmp (any case).</summary>
    public static NetProtocol Protocol(string flag, string text) => text.ToLowerInvariant() switch
    {
        "all" => NetProtocol.All, "tcp" => NetProtocol.Tcp, "udp" => NetProtocol.Udp, "icmp" => NetProtocol.Icmp,
        _ => throw new UsageException($"{flag} expects all, tcp, udp or icmp, got '{text}'"),
    };

    /// <summary>TYPE or TYPE:CODE, numbers; no CODE = every code (-1).</summary>
    public static IcmpArg Icmp(string flag, string text)
    {
        var parts = text.Split(':');
        if (parts.Length > 2 || !uint.TryParse(parts[0], System.Globalization.NumberStyles.None, null, out var type)
            || (parts.Length == 2 && !int.TryParse(parts[1], System.Globalization.NumberStyles.None, null, out _)))
            throw new UsageException($"{flag} expects TYPE or TYPE:CODE (numbers), got '{text}'");
        return new IcmpArg(type, parts.Length == 2 ? int.Parse(parts[1], System.Globalization.NumberStyles.None) : -1);
    }

    /// <summary>SRC:DST[:ro|rw], read-only when no mode is given (as in Garden). SRC and DST must not be empty; whether they
    /// are absolute, exist or name an allowed place is the daemon's to say.</summary>
    public static BindMountArg BindMount(string flag, string text)
    {
        var rest = text;
        var readOnly = true;
        if (rest.EndsWith(":ro", StringComparison.Ordinal)) rest = rest[..^3];
        else if (rest.EndsWith(":rw", StringComparison.Ordinal)) { rest = rest[..^3]; readOnly = false; }
        var parts = rest.Split(':');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new UsageException($"{flag} expects SRC:DST or SRC:DST:ro or SRC:DST:rw (host path, container path; read-only by default), got '{text}'");
        return new BindMountArg(parts[0], parts[1], readOnly);
    }

    /// <summary>A duration: a number with a unit (ms, s, m, h, d), several in a row ("1h30m"), or a bare number of seconds;
    /// "0" = zero. How long may be is the daemon's to say; only what no TimeSpan holds is refused here.</summary>
    public static TimeSpan Duration(string flag, string text, string what = "a duration")
    {
        string Form() => $"{flag} expects {what} such as 30s, 5m, 1h30m, 500ms or 0 (a bare number is seconds), got '{text}'";
        var t = text.Trim();
        if (t.Length == 0) throw new UsageException(Form());
        if (decimal.TryParse(t, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var bare))
            return Checked(bare * 1000m);
        decimal total = 0;
        var i = 0;
        while (i < t.Length)
        {
            var start = i;
            while (i < t.Length && (char.IsAsciiDigit(t[i]) || t[i] == '.')) i++;
            if (i == start || !decimal.TryParse(t[start..i], System.Globalization.NumberStyles.AllowDecimalPoint,
                    System.Globalization.CultureInfo.InvariantCulture, out var number))
                throw new UsageException(Form());
            var unitStart = i;
            while (i < t.Length && char.IsAsciiLetter(t[i])) i++;
            decimal ms = t[unitStart..i] switch
            {
                "ms" => 1, "s" => 1000, "m" => 60_000, "h" => 3_600_000, "d" => 86_400_000,
                _ => throw new UsageException(Form()),
            };
            total += number * ms;
        }
        return Checked(total);

        TimeSpan Checked(decimal ms)
        {
            try { return TimeSpan.FromMilliseconds((double)decimal.Round(ms)); }
            catch (OverflowException) { throw new UsageException($"{flag}: '{text}' is out of range"); }
        }
    }

    /// <summary>A whole number of at least 1 (the API reads 0 as "not set").</summary>
    public static ulong Positive(string flag, string text)
    {
        if (ulong.TryParse(text, System.Globalization.NumberStyles.None, null, out var n) && n > 0) return n;
        throw new UsageException($"{flag} expects a whole number above 0, got '{text}'");
    }

    /// <summary>A fraction of CPUs above 0 (0.5 = half of one CPU; the API reads 0 as "not set").</summary>
    public static double Cpus(string flag, string text)
    {
        if (double.TryParse(text, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var d)
            && d > 0 && double.IsFinite(d)) return d;
        throw new UsageException($"{flag} expects a number of CPUs above 0 (0.5 = half a CPU), got '{text}'");
    }
}
