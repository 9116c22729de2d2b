namespace Garden.Cli.Args;

/// <summary>A flag a command accepts: a switch (--kill) or one taking a value (--env K=V, --env=K=V).</summary>
public sealed record FlagSpec(string Name, bool TakesValue = false, bool Repeatable = false);

/// <summary>What one command's arguments split into.</summary>
public sealed class ScannedArgs
{
    public List<string> Positionals { get; } = [];
    /// <summary>Everything after "--", or after the last positional a command takes before its trailing words (run).</summary>
    public List<string> Trailing { get; } = [];
    public bool HasTrailing { get; set; }
    public Dictionary<string, List<string>> Values { get; } = new(StringComparer.Ordinal);
    public HashSet<string> Switches { get; } = new(StringComparer.Ordinal);

    public bool Has(string flag) => Switches.Contains(flag);
    public string? Value(string flag) => Values.TryGetValue(flag, out var v) ? v[^1] : null;
    public IReadOnlyList<string> All(string flag) => Values.TryGetValue(flag, out var v) ? v : [];
}

/// <summary>Splits a command's arguments into flags and positionals. Global flags are accepted anywhere
/// before "--" (they are part of every command's spec). Unknown flags are an error naming the flag.</summary>
public static class ArgScanner
{
    /// <param name="positionalsBeforeTrailing">when set, the first argument after that many positionals
    /// starts the trailing words (run HANDLE CMD ARGS... without "--").</param>
    public static ScannedArgs Scan(string command, IReadOnlyList<string> args, IReadOnlyList<FlagSpec> flags,
        int? positionalsBeforeTrailing = null)
    {
        var result = new ScannedArgs();
        for (int i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                result.HasTrailing = true;
                result.Trailing.AddRange(args.Skip(i + 1));
                break;
            }
            if (!IsFlag(arg))
            {
                if (positionalsBeforeTrailing is { } n && result.Positionals.Count == n)
                {
                    result.HasTrailing = true;
                    result.Trailing.AddRange(args.Skip(i));
                    break;
                }
                result.Positionals.Add(arg);
                continue;
            }

            string name = arg;
            string? inlineValue = null;
            int eq = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 2)
            {
                name = arg[..eq];
                inlineValue = arg[(eq + 1)..];
            }

            var spec = flags.FirstOrDefault(f => f.Name == name)
                ?? throw new UsageException($"unknown flag '{name}' for '{command}'", command);

            if (!spec.TakesValue)
            {
                if (inlineValue is not null)
                    throw new UsageException($"flag {name} takes no value (got '{arg}')", command);
                result.Switches.Add(name);
                continue;
            }

            string value;
            if (inlineValue is not null) value = inlineValue;
            else if (i + 1 < args.Count && !IsFlag(args[i + 1]) && args[i + 1] != "--") value = args[++i];
            else throw new UsageException($"flag {name} needs a value", command);

            if (!result.Values.TryGetValue(name, out var list))
                result.Values[name] = list = [];
            else if (!spec.Repeatable)
                throw new UsageException($"flag {name} given more than once", command);
            list.Add(value);
        }
        return result;
    }

    /// <summary>"-" alone is a positional (stdin by convention); anything else starting with "-" is a flag.</summary>
    public static bool IsFlag(string arg) => arg.Length > 1 && arg[0] == '-' && arg != "--";
}
