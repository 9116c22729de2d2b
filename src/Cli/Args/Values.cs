namespace Garden.Cli.Args;

/// <summary>One rlimit as the CLI received it; Name is the OCI form (RLIMIT_NOFILE).</summary>
public sealed record RlimitArg(string Name, ulong Soft, ulong Hard);

/// <summary>Parsers for flag values. Every error names the flag and echoes what was received.</summary>
public static class Values
{
    public const ulong Unlimited = ulong.MaxValue;   // RLIM_INFINITY

    private static readonly HashSet<string> RlimitNames = new(StringComparer.Ordinal)
    {
        "AS", "CORE", "CPU", "DATA", "FSIZE", "LOCKS", "MEMLOCK", "MSGQUEUE", "NICE", "NOFILE", "NPROC",
        "RSS", "RTPRIO", "RTTIME", "SIGPENDING", "STACK",
    };

    /// <summary>K=V with a non-empty K; V may be empty and may contain '='.</summary>
    public static KeyValuePair<string, string> KeyValue(string flag, string text)
    {
        int eq = text.IndexOf('=');
        if (eq < 0) throw new UsageException($"{flag} expects KEY=VALUE, got '{text}'");
        if (eq == 0) throw new UsageException($"{flag} expects KEY=VALUE with a non-empty KEY, got '{text}'");
        return new(text[..eq], text[(eq + 1)..]);
    }

    /// <summary>NAME=N or NAME=SOFT:HARD; NAME is nofile, NOFILE or RLIMIT_NOFILE; N may be 'unlimited'.</summary>
    public static RlimitArg Rlimit(string flag, string text)
    {
        if (text.IndexOf('=') <= 0)
            throw new UsageException($"{flag} expects NAME=N or NAME=SOFT:HARD, got '{text}'");
        var kv = KeyValue(flag, text);
        var name = kv.Key.ToUpperInvariant();
        if (name.StartsWith("RLIMIT_", StringComparison.Ordinal)) name = name["RLIMIT_".Length..];
        if (!RlimitNames.Contains(name))
            throw new UsageException($"{flag}: unknown rlimit '{kv.Key}' (one of {string.Join(", ", RlimitNames.Select(n => n.ToLowerInvariant()).Order())})");

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
            hard = RlimitValue(flag, text, value[(colon + 1)..]);
            if (soft > hard)
                throw new UsageException($"{flag}: soft limit above hard limit in '{text}'");
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
    public static ulong Size(string flag, string text)
    {
        var t = text.Trim();
        int end = 0;
        while (end < t.Length && (char.IsAsciiDigit(t[end]) || t[end] == '.')) end++;
        var unit = t[end..].ToUpperInvariant();
        if (unit.EndsWith('B')) unit = unit[..^1];
        if (unit.EndsWith('I')) unit = unit[..^1];
        ulong scale = unit switch
        {
            "" => 1, "K" => 1UL << 10, "M" => 1UL << 20, "G" => 1UL << 30, "T" => 1UL << 40,
            _ => throw new UsageException($"{flag}: cannot read the size '{text}' (a number, optionally with K, M, G or T: 64M, 1G)"),
        };
        if (end == 0 || !decimal.TryParse(t[..end], System.Globalization.NumberStyles.AllowDecimalPoint,
                System.Globalization.CultureInfo.InvariantCulture, out var number))
            throw new UsageException($"{flag}: cannot read the size '{text}' (a number, optionally with K, M, G or T: 64M, 1G)");
        var bytes = number * scale;
        if (bytes < 1 || bytes > ulong.MaxValue)
            throw new UsageException($"{flag}: the size '{text}' is out of range");
        return (ulong)bytes;
    }

    /// <summary>A whole number of at least 1.</summary>
    public static ulong Positive(string flag, string text)
    {
        if (ulong.TryParse(text, System.Globalization.NumberStyles.None, null, out var n) && n > 0) return n;
        throw new UsageException($"{flag} expects a whole number above 0, got '{text}'");
    }

    /// <summary>A fraction of CPUs above 0 (0.5 = half of one CPU).</summary>
    public static double Cpus(string flag, string text)
    {
        if (double.TryParse(text, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var d)
            && d > 0 && double.IsFinite(d)) return d;
        throw new UsageException($"{flag} expects a number of CPUs above 0 (0.5 = half a CPU), got '{text}'");
    }
}
