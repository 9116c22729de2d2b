using System.Text;
using System.Text.RegularExpressions;

namespace Garden.Linux.Network;

/// <summary>The iptables-restore text of our chains (pure: tested without a kernel).
/// filter: FORWARD → {p}-forward and INPUT → {p}-input dispatch by bridge and source address to the container's
/// {p}-o-{ip} (what it may reach: replies, operator deny, operator allow, its NetOut rules, then REJECT).
/// nat: PREROUTING and OUTPUT → {p}-prerouting / {p}-output dispatch local destinations to {p}-n-{ip} (its NetIn DNATs);
/// POSTROUTING → {p}-postrouting masquerades the container's traffic leaving its bridge, and 127.0.0.1 NetIn traffic.</summary>
public static partial class FirewallRules
{
    /// <summary>The dispatch lines of one container in our shared chains, by table.</summary>
    public sealed record Entry(string Handle, string OutChain, string NatChain, IReadOnlyList<string> Filter, IReadOnlyList<string> Nat);

    public static readonly (string Table, string Builtin, string Suffix)[] Hooks =
    [
        ("filter", "FORWARD", "forward"), ("filter", "INPUT", "input"),
        ("nat", "PREROUTING", "prerouting"), ("nat", "OUTPUT", "output"), ("nat", "POSTROUTING", "postrouting"),
    ];

    public static string Chain(string prefix, string suffix) => $"{prefix}-{suffix}";

    public static string Comment(string handle) => $"-m comment --comment {handle}";

    public static Entry EntryFor(ContainerNetwork n)
    {
        var c = Comment(n.Handle);
        var p = n.Prefix;
        return new Entry(n.Handle, n.OutChain, n.NatChain,
            [
                $"-A {p}-forward -s {n.Address}/32 -i {n.Bridge} {c} -j {n.OutChain}",
                $"-A {p}-input -s {n.Address}/32 -i {n.Bridge} {c} -j {n.OutChain}",
            ],
            [
                $"-A {p}-prerouting -m addrtype --dst-type LOCAL {c} -j {n.NatChain}",
                $"-A {p}-output -m addrtype --dst-type LOCAL {c} -j {n.NatChain}",
                $"-A {p}-postrouting -s {n.Address}/32 ! -o {n.Bridge} {c} -j MASQUERADE",
            ]);
    }

    /// <summary>The rules of the container's own filter chain.</summary>
    public static IEnumerable<string> OutRules(FirewallOptions o, ContainerFirewall f)
    {
        var n = f.Network;
        var c = Comment(n.Handle);
        var chain = n.OutChain;
        yield return $"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT";
        foreach (var d in o.DenyNetworks) yield return $"-A {chain} {Destination(d)} {c} -j REJECT --reject-with icmp-net-prohibited";
        foreach (var a in o.AllowNetworks) yield return $"-A {chain} {Destination(a)} {c} -j ACCEPT";
        foreach (var rule in f.NetOut)
        foreach (var match in Matches(rule))
        {
            if (rule.Log) yield return $"-A {chain} {match}-m conntrack --ctstate NEW {c} -j LOG --log-prefix \"{LogPrefix(n)}\"";
            yield return $"-A {chain} {match}{c} -j ACCEPT";
        }
        yield return $"-A {chain} {c} -j REJECT --reject-with icmp-port-unreachable";
    }

    public static IEnumerable<string> NatRules(ContainerFirewall f) => f.NetIn.Select(m =>
        $"-A {f.Network.NatChain} -p tcp -m tcp --dport {m.HostPort} {Comment(f.Network.Handle)} -j DNAT --to-destination {f.Network.Address}:{m.ContainerPort}");

    /// <summary>The log prefix (at most 29 characters): the daemon's prefix and the handle.</summary>
    public static string LogPrefix(ContainerNetwork n)
    {
        var s = $"{n.Prefix} {n.Handle}";
        return (s.Length > 28 ? s[..28] : s) + " ";
    }

    private static string Destination(Ipv4Range r) => r.AsCidr() is { } cidr
        ? $"-d {cidr}"
        : $"-m iprange --dst-range {r.Start}-{r.End}";

    /// <summary>One match per (network, port range) of the rule, each ending with a space.</summary>
    private static IEnumerable<string> Matches(NetOutRule r)
    {
        var proto = r.Protocol switch
        {
            NetProtocol.Tcp => "-p tcp ", NetProtocol.Udp => "-p udp ", NetProtocol.Icmp => "-p icmp ", _ => "",
        };
        var networks = r.Networks.Count == 0 ? [""] : r.Networks.Select(d => Destination(d) + " ").ToArray();
        string[] ports = r.Ports.Count == 0 ? [""]
            : r.Ports.Select(p => $"-m {proto[3..^1]} --dport {(p.Start == p.End ? p.Start.ToString() : $"{p.Start}:{p.End}")} ").ToArray();
        var icmp = r.Protocol == NetProtocol.Icmp && r.IcmpType is { } t
            ? $"-m icmp --icmp-type {t}{(r.IcmpCode is { } code ? "/" + code : "")} " : "";
        foreach (var d in networks)
        foreach (var p in ports)
            yield return proto + d + p + icmp;
    }

    /// <summary>One atomic batch: the shared chains rebuilt from <paramref name="entries"/>, the chains of
    /// <paramref name="apply"/> rebuilt, the chains of <paramref name="remove"/> deleted, and the jumps from the built-in
    /// chains that are missing added or, with the shared chains, the present ones deleted (<paramref name="removeBase"/>).</summary>
    public static string Batch(FirewallOptions o, IEnumerable<Entry> entries, IEnumerable<ContainerFirewall> apply,
        IEnumerable<(string OutChain, string NatChain)> remove, IReadOnlySet<string> jumpsPresent, bool removeBase)
    {
        var p = o.Prefix;
        var all = entries.OrderBy(e => e.Handle, StringComparer.Ordinal).ToList();
        var applied = apply.ToList();
        var removed = remove.ToList();
        var sb = new StringBuilder();
        foreach (var table in new[] { "filter", "nat" })
        {
            sb.Append('*').Append(table).Append('\n');
            var hooks = Hooks.Where(h => h.Table == table).ToList();
            if (removeBase)
                foreach (var h in hooks.Where(h => jumpsPresent.Contains(h.Builtin))) sb.Append($"-D {h.Builtin} -j {Chain(p, h.Suffix)}\n");
            foreach (var h in hooks) sb.Append($":{Chain(p, h.Suffix)} - [0:0]\n");
            foreach (var f in applied) sb.Append($":{(table == "filter" ? f.Network.OutChain : f.Network.NatChain)} - [0:0]\n");
            foreach (var r in removed) sb.Append($":{(table == "filter" ? r.OutChain : r.NatChain)} - [0:0]\n");
            if (!removeBase)
            {
                if (table == "filter")
                {
                    sb.Append($"-A {p}-forward -o {p}b+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
                    sb.Append($"-A {p}-forward -o {p}b+ -m conntrack --ctstate DNAT -j ACCEPT\n");
                    sb.Append($"-A {p}-input -i {p}b+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
                    foreach (var e in all) foreach (var l in e.Filter) sb.Append(l).Append('\n');
                    sb.Append($"-A {p}-forward -i {p}b+ -j DROP\n");
                    sb.Append($"-A {p}-forward -o {p}b+ -j DROP\n");
                    sb.Append($"-A {p}-input -i {p}b+ -j DROP\n");
                    foreach (var f in applied) foreach (var l in OutRules(o, f)) sb.Append(l).Append('\n');
                }
                else
                {
                    foreach (var e in all) foreach (var l in e.Nat) sb.Append(l).Append('\n');
                    sb.Append($"-A {p}-postrouting -s 127.0.0.0/8 -o {p}b+ -j MASQUERADE\n");
                    foreach (var f in applied) foreach (var l in NatRules(f)) sb.Append(l).Append('\n');
                }
                foreach (var h in hooks.Where(h => !jumpsPresent.Contains(h.Builtin))) sb.Append($"-I {h.Builtin} 1 -j {Chain(p, h.Suffix)}\n");
            }
            foreach (var r in removed) sb.Append($"-X {(table == "filter" ? r.OutChain : r.NatChain)}\n");
            if (removeBase)
                foreach (var h in hooks) sb.Append($"-X {Chain(p, h.Suffix)}\n");
            sb.Append("COMMIT\n");
        }
        return sb.ToString();
    }

    /// <summary>What the kernel holds of ours, read from iptables-save.</summary>
    public sealed record KernelState(IReadOnlySet<string> JumpsPresent, IReadOnlyDictionary<string, Entry> Entries, IReadOnlySet<string> Chains);

    [GeneratedRegex(@"--comment (""[^""]*""|\S+)")]
    private static partial Regex CommentPattern();

    public static KernelState Parse(string prefix, string save)
    {
        var chains = new HashSet<string>();
        var filter = new Dictionary<string, List<string>>();
        var nat = new Dictionary<string, List<string>>();
        var jumps = new HashSet<string>();
        var table = "";
        var shared = Hooks.Select(h => Chain(prefix, h.Suffix)).ToHashSet();
        var jumpLines = Hooks.ToDictionary(h => $"-A {h.Builtin} -j {Chain(prefix, h.Suffix)}", h => h.Builtin);
        foreach (var raw in save.Split('\n'))
        {
            var line = raw.TrimEnd();
            if (line.StartsWith('*')) table = line[1..];
            else if (line.StartsWith(':'))
            {
                var name = line[1..].Split(' ')[0];
                if (name.StartsWith(prefix + "-", StringComparison.Ordinal)) chains.Add(name);
            }
            else if (jumpLines.TryGetValue(line, out var builtin)) jumps.Add(builtin);
            else if (line.StartsWith("-A ") && shared.Contains(line.Split(' ')[1]) && CommentPattern().Match(line) is { Success: true } m)
            {
                var handle = m.Groups[1].Value.Trim('"');
                var into = table == "nat" ? nat : filter;
                if (!into.TryGetValue(handle, out var list)) into[handle] = list = [];
                list.Add(line);
            }
        }
        var entries = new Dictionary<string, Entry>();
        foreach (var handle in filter.Keys.Union(nat.Keys))
        {
            var f = filter.GetValueOrDefault(handle) ?? [];
            var n = nat.GetValueOrDefault(handle) ?? [];
            string Target(IEnumerable<string> lines, string marker) =>
                lines.Select(l => l.Split(" -j ").Last()).FirstOrDefault(t => t.StartsWith(prefix + marker, StringComparison.Ordinal)) ?? "";
            entries[handle] = new Entry(handle, Target(f, "-o-"), Target(n, "-n-"), f, n);
        }
        return new KernelState(jumps, entries, chains);
    }
}
