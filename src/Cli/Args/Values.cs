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
}
