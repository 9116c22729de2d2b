namespace Garden.Cli.Args;

/// <summary>Linux signal numbers by name (x86-64 / arm64 numbering).</summary>
public static class Signals
{
    private static readonly Dictionary<string, int> ByName = new(StringComparer.OrdinalIgnoreCase)
    {
        ["HUP"] = 1, ["INT"] = 2, ["QUIT"] = 3, ["ILL"] = 4, ["TRAP"] = 5, ["ABRT"] = 6, ["IOT"] = 6,
        ["BUS"] = 7, ["FPE"] = 8, ["KILL"] = 9, ["USR1"] = 10, ["SEGV"] = 11, ["USR2"] = 12, ["PIPE"] = 13,
        ["ALRM"] = 14, ["TERM"] = 15, ["STKFLT"] = 16, ["CHLD"] = 17, ["CONT"] = 18, ["STOP"] = 19,
        ["TSTP"] = 20, ["TTIN"] = 21, ["TTOU"] = 22, ["URG"] = 23, ["XCPU"] = 24, ["XFSZ"] = 25,
        ["VTALRM"] = 26, ["PROF"] = 27, ["WINCH"] = 28, ["IO"] = 29, ["POLL"] = 29, ["PWR"] = 30, ["SYS"] = 31,
    };

    /// <summary>A number or a name with or without SIG, any case: 15, TERM, SIGTERM, term. Which numbers are signals is the
    /// daemon's to say.</summary>
    public static int Parse(string text)
    {
        var t = text.Trim();
        if (int.TryParse(t, System.Globalization.NumberStyles.None, null, out var number)) return number;
        var name = t.StartsWith("SIG", StringComparison.OrdinalIgnoreCase) ? t[3..] : t;
        if (ByName.TryGetValue(name, out number)) return number;
        throw new UsageException($"unknown signal '{text}' (use a number 1-64 or a name: TERM, KILL, HUP, INT, QUIT, USR1, USR2, ...)");
    }
}
