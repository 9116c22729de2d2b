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

    /// <summary>The comment of a fixed rule of ours: the prefix, a colon and what the rule is for. A handle never holds a
    /// colon, so <see cref="Parse"/> never takes a fixed rule for a container's entry.</summary>
    public static string FixedComment(string prefix, string what) => $"-m comment --comment {prefix}:{what}";

    /// <summary>A container's entries in the shared chains: its filter dispatch; in nat, the jumps to its DNAT chain only when
    /// it has NetIn mappings, and its own masquerade only when the pool's one rule does not cover its subnet (so a container
    /// of the pool without NetIn has no nat rule at all: nothing to delete there at Destroy).</summary>
    public static Entry EntryFor(ContainerNetwork n, FirewallOptions? o = null, bool netIn = true)
    {
        var c = Comment(n.Handle);
        var p = n.Prefix;
        List<string> nat = [];
        if (netIn)
        {
            nat.Add($"-A {p}-prerouting -m addrtype --dst-type LOCAL {c} -j {n.NatChain}");
            nat.Add($"-A {p}-output -m addrtype --dst-type LOCAL {c} -j {n.NatChain}");
        }
        if (!PoolCovers(o, n)) nat.Add($"-A {p}-postrouting -s {n.Address}/32 ! -o {n.HostInterface} {c} -j MASQUERADE");
        return new Entry(n.Handle, n.OutChain, netIn ? n.NatChain : "",
            [
                $"-A {p}-forward -s {n.Address}/32 -i {n.HostInterface} {c} -j {n.OutChain}",
                $"-A {p}-input -s {n.Address}/32 -i {n.HostInterface} {c} -j {n.OutChain}",
            ],
            nat);
    }

    private static bool PoolCovers(FirewallOptions? o, ContainerNetwork n) =>
        o?.Pool is { } pool && pool.Contains(n.Subnet.Network) && n.Subnet.PrefixLength >= pool.PrefixLength && !n.Bridged;

    /// <summary>The tracked flows (connections, UDP flows) one container may have at once through the host: its share of
    /// nf_conntrack_max, which gardend raises to fit every container's (<see cref="Garden.Linux.Host.HostFloors"/>).</summary>
    public const int FlowsPerContainer = 4096;

    /// <summary>The rules of the container's own filter chain.</summary>
    public static IEnumerable<string> OutRules(FirewallOptions o, ContainerFirewall f)
    {
        var n = f.Network;
        var c = Comment(n.Handle);
        var chain = n.OutChain;
        yield return $"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT";
        // Its share of the host's connection tracking table: every flow a NetOut rule lets through takes an entry of the
        // one table (nf_conntrack_max) the host and every container share, and one container sending to new ports filled
        // it at ~8,700 flows a second, after which every new flow through the host was dropped. Refused before any accept
        // (a refused packet's entry is never confirmed, so it takes none).
        yield return $"-A {chain} -m conntrack --ctstate NEW -m connlimit --connlimit-above {FlowsPerContainer} --connlimit-mask 32 " +
                     $"--connlimit-saddr {c} -j REJECT --reject-with icmp-port-unreachable";
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

    /// <summary>What one atomic batch does. Rule deletions are what costs in nf_tables (a flush or delete is ~15 ms per
    /// table), so a change touches the shared chains incrementally: a new container's entries are inserted, a removed one's
    /// deleted, and only when the kernel's view is in doubt are the shared chains flushed and rebuilt from all entries.</summary>
    public sealed record Plan
    {
        /// <summary>Create the shared chains with their fixed rules (they do not exist).</summary>
        public bool CreateShared { get; init; }
        /// <summary>Flush the shared chains and rebuild them from <see cref="Entries"/>.</summary>
        public bool RebuildShared { get; init; }
        /// <summary>Every entry after the change (used by a rebuild).</summary>
        public IReadOnlyCollection<Entry> Entries { get; init; } = [];
        public IReadOnlyCollection<Entry> Insert { get; init; } = [];
        public IReadOnlyCollection<Entry> Delete { get; init; } = [];
        /// <summary>Containers whose own chains are (re)built.</summary>
        public IReadOnlyCollection<ContainerFirewall> Apply { get; init; } = [];
        /// <summary>The tables in which the chains of <see cref="Apply"/> are rebuilt (a NetIn changes only nat, a NetOut only filter).</summary>
        public IReadOnlySet<string> ApplyTables { get; init; } = new HashSet<string> { "filter", "nat" };
        /// <summary>Per handle of <see cref="Apply"/>, its own tables, in place of <see cref="ApplyTables"/> (a batch of
        /// several containers: one without NetIn gets no nat chain).</summary>
        public IReadOnlyDictionary<string, IReadOnlySet<string>> TablesOf { get; init; } = new Dictionary<string, IReadOnlySet<string>>();
        /// <summary>Containers' own chains to delete (no nat chain when it never existed).</summary>
        public IReadOnlyCollection<(string OutChain, string? NatChain)> Remove { get; init; } = [];
        public IReadOnlySet<string> JumpsPresent { get; init; } = new HashSet<string>();
        /// <summary>How many times a jump is there when more than once (see <see cref="KernelState"/>): a removal deletes every copy.</summary>
        public IReadOnlyDictionary<string, int> JumpCopies { get; init; } = new Dictionary<string, int>();
        /// <summary>Delete the shared chains and the jumps into them (no container has rules any more: at gardend's stop or
        /// the startup prune, never at a Destroy).</summary>
        public bool RemoveShared { get; init; }
        /// <summary>The shared chains do not exist and are not made: only containers' own chains are removed (no jump is
        /// inserted into a chain that is not there).</summary>
        public bool NoShared { get; init; }
    }

    /// <summary>The fixed rules of a shared chain: before the containers' entries, and after them. Container interfaces are
    /// bridges ({p}b...) and, for a /30, the host end of the veth ({p}v...).</summary>
    public static (List<string> Head, List<string> Tail) Fixed(FirewallOptions o, string table)
    {
        var p = o.Prefix;
        string[] ifaces = [$"{p}b+", $"{p}v+"];
        if (table == "filter")
            return (
                [.. ifaces.SelectMany(i => HostLoopback(p, i)), .. ifaces.SelectMany(i => new[]
                {
                    $"-A {p}-forward -o {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                    $"-A {p}-forward -o {i} -m conntrack --ctstate DNAT -j ACCEPT",
                    $"-A {p}-input -i {i} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                })],
                [.. ifaces.SelectMany(i => new[] { $"-A {p}-forward -i {i} -j DROP", $"-A {p}-forward -o {i} -j DROP", $"-A {p}-input -i {i} -j DROP" })]);
        List<string> tail = [.. ifaces.Select(i => $"-A {p}-postrouting -s 127.0.0.0/8 -o {i} -j MASQUERADE")];
        // Every /30 of the pool at once: traffic leaving for anything but another container is masqueraded.
        if (o.Pool is { } pool) tail.Add($"-A {p}-postrouting -s {pool} ! -o {p}v+ -j MASQUERADE");
        return ([], tail);
    }

    /// <summary>No container reaches the host's 127.0.0.0/8 (the CVE-2020-8558 class). NetIn from the host's 127.0.0.1
    /// needs route_localnet=1 on the container's host interface (the DNATed packet leaves it with source 127.0.0.1, and the
    /// replies come back to 127.0.0.1 once conntrack undoes the masquerade), and route_localnet also lets the kernel accept
    /// a frame from the container addressed to 127.0.0.1 and deliver it to a service bound to the host's loopback. Of the two
    /// fixes (drop that traffic, or serve NetIn from loopback without route_localnet through a proxy of our own) the drop
    /// keeps the kernel's NAT path and costs nothing per connection; it is kube-proxy's rule, in our input chain and only
    /// for our interfaces: traffic to 127.0.0.0/8 from a container is dropped unless conntrack knows it as the reply of a
    /// connection the host opened (ESTABLISHED, RELATED: exactly the NetIn replies) or as DNATed there by a rule of the
    /// host's. A packet from a container with a 127.0.0.0/8 source is a forgery (nothing of ours sends one: NetIn replies
    /// come from the container's address), and could otherwise pass as part of a host-local connection conntrack already
    /// tracks: dropped before any ESTABLISHED accept, in input and in forward (a forged reply to a NetIn DNAT is forwarded).</summary>
    public static IEnumerable<string> HostLoopback(string p, string iface)
    {
        var c = FixedComment(p, "host-loopback");
        yield return $"-A {p}-input -i {iface} -s 127.0.0.0/8 {c} -j DROP";
        yield return $"-A {p}-input -i {iface} ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT {c} -j DROP";
        yield return $"-A {p}-forward -i {iface} -s 127.0.0.0/8 {c} -j DROP";
    }

    /// <summary>How many rules each shared chain holds with these entries.</summary>
    public static Dictionary<string, int> SharedCounts(FirewallOptions o, IEnumerable<Entry> entries)
    {
        var p = o.Prefix;
        var counts = Hooks.ToDictionary(h => Chain(p, h.Suffix), _ => 0);
        foreach (var table in new[] { "filter", "nat" })
        {
            var (head, tail) = Fixed(o, table);
            foreach (var l in head.Concat(tail)) counts[l.Split(' ')[1]]++;
        }
        foreach (var e in entries)
        foreach (var l in e.Filter.Concat(e.Nat))
            counts[l.Split(' ')[1]]++;
        return counts;
    }

    /// <summary>A container's entry goes right after the fixed head of its chain (the loopback drops must come before any
    /// dispatch), before the entries already there: where a rebuild would put it.</summary>
    private static string Insert(string appendLine, IReadOnlyList<string> head)
    {
        var chain = appendLine.Split(' ')[1];
        var position = head.Count(l => l.Split(' ')[1] == chain) + 1;
        return $"-I {chain} {position}{appendLine[(3 + chain.Length)..]}";
    }

    private static string Delete(string appendLine) => "-D" + appendLine[2..];

    public static string Batch(FirewallOptions o, Plan plan)
    {
        var p = o.Prefix;
        var all = new StringBuilder();
        foreach (var table in new[] { "filter", "nat" })
        {
            var sb = new StringBuilder();
            var hooks = Hooks.Where(h => h.Table == table).ToList();
            string Own(ContainerNetwork n) => table == "filter" ? n.OutChain : n.NatChain;
            IEnumerable<string> Lines(Entry e) => table == "filter" ? e.Filter : e.Nat;
            var (head, tail) = Fixed(o, table);
            var removed = plan.Remove.Select(r => table == "filter" ? r.OutChain : r.NatChain).OfType<string>().ToList();

            if (plan.RemoveShared)
                foreach (var h in hooks.Where(h => plan.JumpsPresent.Contains(h.Builtin)))
                    for (var i = 0; i < Math.Max(1, plan.JumpCopies.GetValueOrDefault(h.Builtin)); i++)
                        sb.Append($"-D {h.Builtin} -j {Chain(p, h.Suffix)}\n");
            if (plan.CreateShared || plan.RebuildShared || plan.RemoveShared)
                foreach (var h in hooks) sb.Append($":{Chain(p, h.Suffix)} - [0:0]\n"); // creates, or flushes
            else
                foreach (var e in plan.Delete) foreach (var l in Lines(e)) sb.Append(Delete(l)).Append('\n');
            var apply = plan.Apply.Where(f => (plan.TablesOf.GetValueOrDefault(f.Network.Handle) ?? plan.ApplyTables).Contains(table)).ToList();
            foreach (var f in apply)
                // Declaring a chain creates it, or flushes it when it exists.
                sb.Append($":{Own(f.Network)} - [0:0]\n");
            foreach (var r in removed) sb.Append($":{r} - [0:0]\n");

            if (!plan.RemoveShared)
            {
                if (plan.CreateShared || plan.RebuildShared)
                {
                    foreach (var l in head) sb.Append(l).Append('\n');
                    foreach (var e in plan.Entries.OrderBy(e => e.Handle, StringComparer.Ordinal)) foreach (var l in Lines(e)) sb.Append(l).Append('\n');
                    foreach (var l in tail) sb.Append(l).Append('\n');
                }
                else
                    foreach (var e in plan.Insert) foreach (var l in Lines(e)) sb.Append(Insert(l, head)).Append('\n');
                foreach (var f in apply)
                    foreach (var l in table == "filter" ? OutRules(o, f) : NatRules(f)) sb.Append(l).Append('\n');
                if (!plan.NoShared)
                    foreach (var h in hooks.Where(h => !plan.JumpsPresent.Contains(h.Builtin))) sb.Append($"-I {h.Builtin} 1 -j {Chain(p, h.Suffix)}\n");
            }
            foreach (var r in removed) sb.Append($"-X {r}\n");
            if (plan.RemoveShared)
                foreach (var h in hooks) sb.Append($"-X {Chain(p, h.Suffix)}\n");
            // A table the change does not touch is left out: even an empty commit of it costs a transaction.
            if (sb.Length > 0) all.Append('*').Append(table).Append('\n').Append(sb).Append("COMMIT\n");
        }
        return all.ToString();
    }

    /// <summary>What the kernel holds of ours, read from iptables-save. <paramref name="JumpCopies"/>: how many times each
    /// jump is there (more than once when two daemons were given one prefix): a removal deletes every copy, or the chain
    /// stays referenced and cannot be deleted.</summary>
    public sealed record KernelState(IReadOnlySet<string> JumpsPresent, IReadOnlyDictionary<string, Entry> Entries, IReadOnlySet<string> Chains,
        IReadOnlyDictionary<string, int> RuleCounts, IReadOnlyDictionary<string, int> JumpCopies);

    [GeneratedRegex(@"--comment (""[^""]*""|\S+)")]
    private static partial Regex CommentPattern();

    public static KernelState Parse(string prefix, string save)
    {
        var chains = new HashSet<string>();
        var filter = new Dictionary<string, List<string>>();
        var nat = new Dictionary<string, List<string>>();
        var jumps = new HashSet<string>();
        var copies = new Dictionary<string, int>();
        var counts = new Dictionary<string, int>();
        var table = "";
        var shared = Hooks.Select(h => Chain(prefix, h.Suffix)).ToHashSet();
        var jumpLines = Hooks.ToDictionary(h => $"-A {h.Builtin} -j {Chain(prefix, h.Suffix)}", h => h.Builtin);
        foreach (var raw in save.Split('\n'))
        {
            var line = raw.TrimEnd();
            if (line.StartsWith("-A " + prefix + "-", StringComparison.Ordinal))
            {
                var chain = line.Split(' ')[1];
                counts[chain] = counts.GetValueOrDefault(chain) + 1;
            }
            if (line.StartsWith('*')) table = line[1..];
            else if (line.StartsWith(':'))
            {
                var name = line[1..].Split(' ')[0];
                if (name.StartsWith(prefix + "-", StringComparison.Ordinal)) chains.Add(name);
            }
            else if (jumpLines.TryGetValue(line, out var builtin))
            {
                jumps.Add(builtin);
                copies[builtin] = copies.GetValueOrDefault(builtin) + 1;
            }
            else if (line.StartsWith("-A ") && shared.Contains(line.Split(' ')[1]) && CommentPattern().Match(line) is { Success: true } m &&
                     !m.Groups[1].Value.Trim('"').StartsWith(prefix + ":", StringComparison.Ordinal))
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
        return new KernelState(jumps, entries, chains, counts, copies);
    }
}
