using Garden.Protocol.Agent;

namespace Garden.Agent;

internal static class Rlimits
{
    private static readonly Dictionary<string, int> Resources = new(StringComparer.OrdinalIgnoreCase)
    {
        ["cpu"] = 0,
        ["fsize"] = 1,
        ["data"] = 2,
        ["stack"] = 3,
        ["core"] = 4,
        ["rss"] = 5,
        ["nproc"] = 6,
        ["nofile"] = 7,
        ["memlock"] = 8,
        ["as"] = 9,
        ["locks"] = 10,
        ["sigpending"] = 11,
        ["msgqueue"] = 12,
        ["nice"] = 13,
        ["rtprio"] = 14,
        ["rttime"] = 15,
    };

    /// <summary>The names the agent knows (a test ties them to the daemon's list, Garden.Actors' RlimitNames.Known).</summary>
    public static IReadOnlyCollection<string> Names => Resources.Keys;

    /// <summary>Maps "nofile" (also "RLIMIT_NOFILE") to its resource number; unknown → INVALID.</summary>
    public static int Resource(string name)
    {
        var n = name.StartsWith("rlimit_", StringComparison.OrdinalIgnoreCase) ? name[7..] : name;
        return Resources.TryGetValue(n, out var r)
            ? r
            : throw new AgentErrorException(ErrorCode.Invalid, $"unknown rlimit: {name}");
    }
}
