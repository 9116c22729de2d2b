namespace Garden.Linux.Network;

/// <summary>The ip6tables-restore text of our IPv6 guard (pure: tested without a kernel). Containers have no IPv6:
/// neither end of a veth nor a bridge of ours holds an IPv6 address and the host's ends have IPv6 off (see
/// <see cref="IpPlumbing"/>); these chains are the second wall, for whatever gets past the first (a host end that an
/// older build made, an operator turning IPv6 back on): every IPv6 packet from, to or through one of our interfaces is
/// dropped. No rule names a container, so the chains are the same for all of them: they exist while the IPv4 shared
/// chains do (from the first container to the last), jumped to first from INPUT, FORWARD and OUTPUT of ip6tables' filter
/// table, every rule commented with the prefix.</summary>
public static class Ip6Rules
{
    public static readonly (string Builtin, string Suffix)[] Hooks = [("INPUT", "input"), ("FORWARD", "forward"), ("OUTPUT", "output")];

    /// <summary>The rules of our chains, in order.</summary>
    public static IReadOnlyList<string> Rules(string p)
    {
        var c = FirewallRules.FixedComment(p, "no-ipv6");
        List<string> rules = [];
        foreach (var i in new[] { $"{p}b+", $"{p}v+" })
        {
            rules.Add($"-A {p}-input -i {i} {c} -j DROP");
            rules.Add($"-A {p}-forward -i {i} {c} -j DROP");
            rules.Add($"-A {p}-forward -o {i} {c} -j DROP");
            rules.Add($"-A {p}-output -o {i} {c} -j DROP");
        }
        return rules;
    }

    /// <summary>What the kernel holds of ours in ip6tables' filter table. <paramref name="JumpCopies"/>: how many times
    /// each jump is there when more than once (two daemons given one prefix each put theirs in): a removal deletes every
    /// copy, or the chain stays referenced and cannot be deleted.</summary>
    public sealed record KernelState(IReadOnlySet<string> JumpsPresent, IReadOnlySet<string> Chains, int RuleCount,
        IReadOnlyDictionary<string, int>? JumpCopies = null)
    {
        public static readonly KernelState Empty = new(new HashSet<string>(), new HashSet<string>(), 0);

        public bool Any => JumpsPresent.Count > 0 || Chains.Count > 0;
    }

    /// <summary>The state right after <see cref="Install"/>.</summary>
    public static KernelState Installed(string p) =>
        new(Hooks.Select(h => h.Builtin).ToHashSet(), Hooks.Select(h => FirewallRules.Chain(p, h.Suffix)).ToHashSet(), Rules(p).Count);

    /// <summary>True when every jump, chain and rule is there (rules are counted: the chains are ours alone).</summary>
    public static bool Intact(string p, KernelState s) =>
        s.JumpsPresent.Count == Hooks.Length && Hooks.All(h => s.Chains.Contains(FirewallRules.Chain(p, h.Suffix))) && s.RuleCount == Rules(p).Count;

    public static KernelState Parse(string p, string save)
    {
        var jumps = new HashSet<string>();
        var copies = new Dictionary<string, int>();
        var chains = new HashSet<string>();
        var count = 0;
        var jumpLines = Hooks.ToDictionary(h => $"-A {h.Builtin} -j {FirewallRules.Chain(p, h.Suffix)}", h => h.Builtin);
        var table = "";
        foreach (var raw in save.Split('\n'))
        {
            var line = raw.TrimEnd();
            if (line.StartsWith('*')) table = line[1..];
            if (table != "filter") continue;
            if (line.StartsWith(':') && line[1..].Split(' ')[0] is var name && name.StartsWith(p + "-", StringComparison.Ordinal)) chains.Add(name);
            else if (jumpLines.TryGetValue(line, out var builtin))
            {
                jumps.Add(builtin);
                copies[builtin] = copies.GetValueOrDefault(builtin) + 1;
            }
            else if (line.StartsWith("-A " + p + "-", StringComparison.Ordinal)) count++;
        }
        return new KernelState(jumps, chains, count, copies);
    }

    /// <summary>(Re)builds the chains: declaring a chain creates it or flushes it; a missing jump is inserted first.</summary>
    public static string Install(string p, KernelState s)
    {
        var sb = new System.Text.StringBuilder("*filter\n");
        foreach (var h in Hooks) sb.Append($":{FirewallRules.Chain(p, h.Suffix)} - [0:0]\n");
        foreach (var r in Rules(p)) sb.Append(r).Append('\n');
        foreach (var h in Hooks.Where(h => !s.JumpsPresent.Contains(h.Builtin))) sb.Append($"-I {h.Builtin} 1 -j {FirewallRules.Chain(p, h.Suffix)}\n");
        return sb.Append("COMMIT\n").ToString();
    }

    /// <summary>Removes the jumps that exist and every chain of ours in the table.</summary>
    public static string Remove(string p, KernelState s)
    {
        var sb = new System.Text.StringBuilder("*filter\n");
        foreach (var h in Hooks.Where(h => s.JumpsPresent.Contains(h.Builtin)))
            for (var i = 0; i < Math.Max(1, s.JumpCopies?.GetValueOrDefault(h.Builtin) ?? 1); i++)
                sb.Append($"-D {h.Builtin} -j {FirewallRules.Chain(p, h.Suffix)}\n");
        var chains = s.Chains.Order(StringComparer.Ordinal).ToList();
        foreach (var c in chains) sb.Append($":{c} - [0:0]\n");
        foreach (var c in chains) sb.Append($"-X {c}\n");
        return sb.Append("COMMIT\n").ToString();
    }
}
