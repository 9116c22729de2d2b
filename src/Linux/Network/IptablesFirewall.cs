using Garden.Linux.Interop;
using Garden.Linux.Process;

namespace Garden.Linux.Network;

/// <summary>The firewall with iptables (the host's default backend): every change is one `iptables-restore --noflush`
/// batch, so it applies whole or not at all and never touches chains that are not ours. What the kernel holds of ours
/// is read once (iptables-save) and then kept in step with each batch; after a failed batch it is read again and the
/// change tried once more. The shared chains, the jumps into them and the IPv6 guard (<see cref="Ip6Rules"/>, one
/// `ip6tables-restore` batch run alongside the IPv4 one when it has to be made or removed; never on a host whose kernel has
/// no IPv6) are made with the first container's rules and then stay for as long as gardend runs, with or without
/// containers: they match only our own interfaces, so without containers they match nothing, and making and removing them
/// at every first Create and last Destroy cost an nf_tables transaction each way (~10 ms). A Destroy is one batch that
/// deletes only the container's entries and chains. They go at gardend's orderly stop when no container has rules left
/// (<see cref="ReleaseSharedAsync"/>), and at the startup prune when no live container has rules.</summary>
public sealed class IptablesFirewall : IFirewall
{
    private readonly FirewallOptions _options;
    private readonly string _conntrackMax;
    private readonly Lazy<string> _restore;
    private readonly Lazy<string> _save;
    private readonly Lazy<string> _restore6;
    private readonly Lazy<string> _save6;
    /// <summary>False on a host whose kernel has no IPv6 (ipv6.disable=1): nothing to guard, and ip6tables would fail.</summary>
    private readonly bool _ipv6;
    private Ip6Rules.KernelState _v6 = Ip6Rules.KernelState.Empty;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly IReadOnlyList<string> _shared;
    private Dictionary<string, FirewallRules.Entry>? _entries;
    private HashSet<string> _jumps = [];
    /// <summary>Jumps the kernel held more than once when last read (a removal deletes every copy).</summary>
    private IReadOnlyDictionary<string, int> _jumpCopies = new Dictionary<string, int>();
    private HashSet<string> _chains = [];
    private Dictionary<string, int> _counts = [];
    /// <summary>What this instance last applied per handle: a later change rebuilds only the table whose rules changed.</summary>
    private readonly Dictionary<string, ContainerFirewall> _applied = [];

    public IptablesFirewall(FirewallOptions options, string? iptablesRestore = null, string? iptablesSave = null,
        string? ip6tablesRestore = null, string? ip6tablesSave = null, string conntrackMax = "/proc/sys/net/netfilter/nf_conntrack_max")
    {
        _conntrackMax = conntrackMax;
        if (ContainerNetwork.PrefixProblem(options.Prefix) is { } problem) throw new ArgumentException($"network prefix {problem}");
        _options = options;
        _restore = new(() => Command.Resolve(iptablesRestore ?? "iptables-restore"));
        _save = new(() => Command.Resolve(iptablesSave ?? "iptables-save"));
        _restore6 = new(() => Command.Resolve(ip6tablesRestore ?? "ip6tables-restore"));
        _save6 = new(() => Command.Resolve(ip6tablesSave ?? "ip6tables-save"));
        _ipv6 = Directory.Exists("/proc/sys/net/ipv6");
        _shared = [.. FirewallRules.Hooks.Select(h => FirewallRules.Chain(options.Prefix, h.Suffix))];
    }

    private bool SharedExist => _shared.All(_chains.Contains);

    private bool V6Intact => !_ipv6 || Ip6Rules.Intact(_options.Prefix, _v6);

    /// <summary>Applies waiting for the lock: whoever takes it next applies them all in one batch (one nf_tables
    /// transaction, and one iptables-restore, for the Creates that came meanwhile instead of one each).</summary>
    private readonly List<(ContainerFirewall Item, TaskCompletionSource Done)> _applies = [];

    public Task ApplyAsync(ContainerFirewall container, CancellationToken ct)
    {
        foreach (var r in container.NetOut) r.Validated();
        return InBatchAsync(_applies, container, ApplyBatchAsync, ct);
    }

    /// <summary>The group commit of applies and removals: <paramref name="item"/> waits in <paramref name="pending"/> for
    /// the lock; whoever takes it next runs everything pending as one batch (<paramref name="run"/> completes each
    /// item's outcome). A call cancelled while its item still waits takes it back; one already taken into a batch gets
    /// that batch's outcome.</summary>
    private async Task InBatchAsync<T>(List<(T Item, TaskCompletionSource Done)> pending, T item,
        Func<List<(T Item, TaskCompletionSource Done)>, CancellationToken, Task> run, CancellationToken ct)
    {
        var mine = (item, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (pending) pending.Add(mine);
        try
        {
            await _lock.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            bool waiting;
            lock (pending) waiting = pending.Remove(mine);
            if (waiting) throw;
            await mine.Item2.Task.ConfigureAwait(false);
            return;
        }
        try
        {
            List<(T Item, TaskCompletionSource Done)> batch;
            lock (pending)
            {
                batch = [.. pending];
                pending.Clear();
            }
            if (batch.Count > 0) await run(batch, ct).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
        await mine.Item2.Task.ConfigureAwait(false); // done by this call, or by one that held the lock before it
    }

    /// <summary>Applies <paramref name="batch"/> in one iptables-restore (of two applies of one container, the later: each
    /// is the whole of its rules); when that fails, each on its own, so only a container whose rules fail hears of it. Under
    /// the lock.</summary>
    private async Task ApplyBatchAsync(List<(ContainerFirewall Item, TaskCompletionSource Done)> batch, CancellationToken ct)
    {
        var latest = batch.GroupBy(b => b.Item.Network.Handle).Select(g => g.Last().Item).ToList();
        try
        {
            await ApplyManyAsync(latest, rebuild: false, ct).ConfigureAwait(false);
            foreach (var (_, done) in batch) done.TrySetResult();
            return;
        }
        catch (Exception e)
        {
            if (latest.Count == 1)
            {
                foreach (var (_, done) in batch) done.TrySetException(e);
                return;
            }
        }
        foreach (var group in batch.GroupBy(b => b.Item.Network.Handle))
        {
            try
            {
                await ApplyManyAsync([group.Last().Item], rebuild: false, ct).ConfigureAwait(false);
                foreach (var (_, done) in group) done.TrySetResult();
            }
            catch (Exception e)
            {
                foreach (var (_, done) in group) done.TrySetException(e);
            }
        }
    }

    /// <summary>Makes or changes the rules of <paramref name="containers"/> (distinct handles) in one batch. Under the lock.</summary>
    private Task ApplyManyAsync(IReadOnlyList<ContainerFirewall> containers, bool rebuild, CancellationToken ct) => RetryOnceAsync(async attempt =>
    {
        var entries = await EntriesAsync(ct).ConfigureAwait(false);
        var next = new Dictionary<string, FirewallRules.Entry>(entries);
        var full = rebuild || attempt > 0 || !SharedExist;
        List<FirewallRules.Entry> insert = [], delete = [];
        var tablesOf = new Dictionary<string, IReadOnlySet<string>>();
        var natChains = new HashSet<string>();
        foreach (var container in containers)
        {
            var n = container.Network;
            var netIn = container.NetIn.Count > 0;
            var entry = FirewallRules.EntryFor(n, _options, netIn);
            next[n.Handle] = entry;
            var had = entries.TryGetValue(n.Handle, out var old);
            var same = had && old!.Filter.SequenceEqual(entry.Filter) && old.Nat.SequenceEqual(entry.Nat);
            var tables = new HashSet<string> { "filter", "nat" };
            // No NetIn, no nat chain of its own (unless an earlier daemon made one): nat is not touched at all.
            var natChain = netIn || _chains.Contains(n.NatChain);
            if (!natChain) tables.Remove("nat");
            else natChains.Add(n.Handle);
            if (!full && same && _applied.TryGetValue(n.Handle, out var before) && before.Network == n)
            {
                if (before.NetOut.Count == container.NetOut.Count && before.NetOut.Zip(container.NetOut).All(r => r.First.Equivalent(r.Second)))
                    tables.Remove("filter");
                if (before.NetIn.SequenceEqual(container.NetIn)) tables.Remove("nat");
            }
            tablesOf[n.Handle] = tables;
            if (!full && !same)
            {
                insert.Add(entry);
                if (had) delete.Add(old!);
            }
        }
        var plan = new FirewallRules.Plan
        {
            CreateShared = !SharedExist,
            RebuildShared = full,
            Entries = next.Values,
            Insert = insert,
            Delete = delete,
            Apply = containers,
            TablesOf = tablesOf,
            JumpsPresent = _jumps,
        };
        await Task.WhenAll(
            RestoreAsync(FirewallRules.Batch(_options, plan), $"rules of {string.Join(", ", containers.Select(c => c.Network.Handle))}", ct),
            V6Intact ? Task.CompletedTask : Restore6Async(Ip6Rules.Install(_options.Prefix, _v6), "IPv6 guard", ct)).ConfigureAwait(false);
        if (_ipv6) _v6 = Ip6Rules.Installed(_options.Prefix);
        foreach (var container in containers) _applied[container.Network.Handle] = container;
        if (_jumps.Count < FirewallRules.Hooks.Length)
        {
            EnableForwarding();
            RaiseConntrack();
        }
        _entries = next;
        _jumps = FirewallRules.Hooks.Select(h => h.Builtin).ToHashSet();
        _chains.UnionWith(_shared);
        foreach (var (chain, count) in FirewallRules.SharedCounts(_options, next.Values)) _counts[chain] = count;
        foreach (var container in containers)
        {
            var n = container.Network;
            _chains.Add(n.OutChain);
            _counts[n.OutChain] = FirewallRules.OutRules(_options, container).Count();
            if (natChains.Contains(n.Handle))
            {
                _chains.Add(n.NatChain);
                _counts[n.NatChain] = FirewallRules.NatRules(container).Count();
            }
        }
    });

    /// <summary>A batch built from a stale view (someone else changed our chains) fails whole: read the kernel and try once
    /// more, rebuilding the shared chains.</summary>
    private async Task RetryOnceAsync(Func<int, Task> change)
    {
        try
        {
            await change(0).ConfigureAwait(false);
        }
        catch (FirewallException)
        {
            _entries = null;
            await change(1).ConfigureAwait(false);
        }
    }

    public async Task<bool> EnsureAsync(ContainerFirewall container, CancellationToken ct)
    {
        var n = container.Network;
        bool sharedIntact;
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var entries = await EntriesAsync(ct).ConfigureAwait(false);
            var netIn = container.NetIn.Count > 0;
            var expected = FirewallRules.EntryFor(n, _options, netIn);
            sharedIntact = _jumps.Count == FirewallRules.Hooks.Length && SharedExist && V6Intact &&
                SharedCounts(entries).All(kv => _counts.GetValueOrDefault(kv.Key) == kv.Value);
            if (sharedIntact && entries.TryGetValue(n.Handle, out var held) &&
                held.Filter.Count == expected.Filter.Count && held.Nat.Count == expected.Nat.Count &&
                held.OutChain == n.OutChain && held.NatChain == expected.NatChain &&
                _counts.GetValueOrDefault(n.OutChain) == FirewallRules.OutRules(_options, container).Count() &&
                (!netIn || _counts.GetValueOrDefault(n.NatChain) == FirewallRules.NatRules(container).Count()))
                return false;
        }
        finally
        {
            _lock.Release();
        }
        foreach (var r in container.NetOut) r.Validated();
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await ApplyManyAsync([container], rebuild: !sharedIntact, ct).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
        return true;
    }

    private Dictionary<string, FirewallRules.Entry>? _countedEntries;
    private Dictionary<string, int> _sharedCounts = [];

    /// <summary>The shared chains' rule counts that <paramref name="entries"/> make, computed once per view (a view is
    /// never changed in place: every change makes a new one). A restart's N reconciles each ask it of the same view:
    /// counted each time, that was every rule of every container per container, O(N²) under the lock.</summary>
    private Dictionary<string, int> SharedCounts(Dictionary<string, FirewallRules.Entry> entries)
    {
        if (!ReferenceEquals(entries, _countedEntries))
        {
            _sharedCounts = FirewallRules.SharedCounts(_options, entries.Values);
            _countedEntries = entries;
        }
        return _sharedCounts;
    }

    /// <summary>Removals waiting for the lock: whoever takes it next removes them all in one batch (one nf_tables
    /// transaction for the destroys that came meanwhile, instead of one each).</summary>
    private readonly List<(ContainerNetwork Item, TaskCompletionSource Done)> _removals = [];

    public Task RemoveAsync(ContainerNetwork network, CancellationToken ct) => InBatchAsync(_removals, network, async (batch, token) =>
    {
        try
        {
            await RemoveManyAsync([.. batch.Select(b => b.Item)], token).ConfigureAwait(false);
            foreach (var (_, done) in batch) done.TrySetResult();
        }
        catch (Exception e)
        {
            foreach (var (_, done) in batch) done.TrySetException(e);
        }
    }, ct);

    /// <summary>Removes the rules of <paramref name="networks"/> in one batch. Under the lock.</summary>
    private Task RemoveManyAsync(IReadOnlyList<ContainerNetwork> networks, CancellationToken ct) => RetryOnceAsync(async attempt =>
    {
        var entries = await EntriesAsync(ct).ConfigureAwait(false);
        var next = new Dictionary<string, FirewallRules.Entry>(entries);
        List<FirewallRules.Entry> delete = [];
        List<(string, string?)> chains = [];
        List<string> handles = [];
        foreach (var network in networks.DistinctBy(n => (n.Handle, n.OutChain)))
        {
            var had = next.Remove(network.Handle, out var old);
            var nat = _chains.Contains(network.NatChain) ? network.NatChain : null;
            if (!had && nat is null && !_chains.Contains(network.OutChain)) continue; // nothing of it in the kernel
            if (had) delete.Add(old!);
            chains.Add((network.OutChain, nat));
            handles.Add(network.Handle);
        }
        if (chains.Count == 0) return; // no batch
        await RemoveCoreAsync(next, attempt == 0 ? delete : [], chains, removeShared: false, rebuild: attempt > 0,
            string.Join(", ", handles), ct).ConfigureAwait(false);
    });

    public async Task<IReadOnlyList<string>> PruneAsync(IReadOnlySet<string> liveHandles, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _entries = null; // read the kernel afresh
            var entries = await EntriesAsync(ct).ConfigureAwait(false);
            var dead = entries.Keys.Where(h => !liveHandles.Contains(h)).ToList();
            var next = entries.Where(kv => liveHandles.Contains(kv.Key)).ToDictionary();
            var kept = next.Values.SelectMany(e => new[] { e.OutChain, e.NatChain }).ToHashSet();
            var orphans = _chains.Where(c => !kept.Contains(c) && !_shared.Contains(c)).ToList();
            if (dead.Count == 0 && orphans.Count == 0 && (next.Count > 0 || (!_chains.Any() && !_v6.Any))) return [];
            // A chain name alone says which table it lives in ({p}-o-: filter, {p}-n-: nat); pair each with its namesake in
            // the other table (declaring a chain that does not exist creates it, -X removes it again).
            var p = _options.Prefix;
            string? Present(string chain) => _chains.Contains(chain) ? chain : null;
            var remove = orphans.Select(c => c.StartsWith(p + "-o-", StringComparison.Ordinal)
                ? (c, Present(p + "-n-" + c[(p.Length + 3)..]))
                : (Present(p + "-o-" + c[(p.Length + 3)..]) ?? p + "-o-" + c[(p.Length + 3)..], (string?)c)).Distinct().ToList();
            // No live container has rules: the shared chains, their jumps and the IPv6 guard go too (the first Create makes them again).
            await RemoveCoreAsync(next, [], remove, removeShared: next.Count == 0, rebuild: true, "leftover containers", ct).ConfigureAwait(false);
            return dead;
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<IReadOnlySet<string>> InstalledAsync(CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _entries = null;
            return (await EntriesAsync(ct).ConfigureAwait(false)).Keys.ToHashSet();
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task<bool> ReleaseSharedAsync(CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var released = false;
            await RetryOnceAsync(async _ =>
            {
                _entries = null; // decided on what the kernel holds now, not on this instance's view
                var entries = await EntriesAsync(ct).ConfigureAwait(false);
                // A container's entry or a chain of its own: a container (perhaps one whose rules an operator half flushed)
                // still counts on the shared chains, and outlives gardend. Startup's prune decides with the journal.
                if (entries.Count > 0 || _chains.Any(c => !_shared.Contains(c))) return;
                if (_jumps.Count == 0 && _chains.Count == 0 && !_v6.Any) return; // nothing of ours in the kernel
                await RemoveCoreAsync([], [], [], removeShared: true, rebuild: false, "shared chains (no container has rules)", ct)
                    .ConfigureAwait(false);
                released = true;
            }).ConfigureAwait(false);
            return released;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>One batch (and one IPv6 batch when the guard goes): deletes the entries in <paramref name="delete"/> and the
    /// containers' own <paramref name="chains"/>. With <paramref name="removeShared"/> the shared chains, the jumps into
    /// them and the IPv6 guard go too; otherwise they stay, and are repaired (rebuilt from <paramref name="next"/>) when
    /// the view is in doubt or one of them is missing; when none of them exists at all, none is made: only the containers'
    /// own chains are removed.</summary>
    private async Task RemoveCoreAsync(Dictionary<string, FirewallRules.Entry> next, IReadOnlyCollection<FirewallRules.Entry> delete,
        IReadOnlyList<(string, string?)> chains, bool removeShared, bool rebuild, string what, CancellationToken ct)
    {
        var anyShared = _jumps.Count > 0 || _shared.Any(_chains.Contains);
        var keepShared = !removeShared && anyShared;
        var v4 = !removeShared || _jumps.Count > 0 || _chains.Count > 0;
        var v6 = removeShared && _v6.Any;
        if (!v4 && !v6) return; // nothing of ours in the kernel
        var plan = new FirewallRules.Plan
        {
            RemoveShared = removeShared,
            NoShared = !removeShared && !anyShared,
            RebuildShared = keepShared && (rebuild || !SharedExist),
            CreateShared = keepShared && !SharedExist,
            Entries = next.Values,
            Delete = !keepShared || rebuild || !SharedExist ? [] : delete,
            Remove = chains,
            JumpsPresent = _jumps,
            JumpCopies = _jumpCopies,
        };
        await Task.WhenAll(
            v4 ? RestoreAsync(FirewallRules.Batch(_options, plan), $"removal of the rules of {what}", ct) : Task.CompletedTask,
            v6 ? Restore6Async(Ip6Rules.Remove(_options.Prefix, _v6), "removal of the IPv6 guard", ct) : Task.CompletedTask).ConfigureAwait(false);
        if (v6) _v6 = Ip6Rules.KernelState.Empty;
        _entries = next;
        foreach (var h in _applied.Keys.Where(h => !next.ContainsKey(h)).ToList()) _applied.Remove(h);
        foreach (var (o, n) in chains)
        {
            _chains.Remove(o);
            _counts.Remove(o);
            if (n is null) continue;
            _chains.Remove(n);
            _counts.Remove(n);
        }
        if (removeShared)
        {
            _jumps = [];
            _jumpCopies = new Dictionary<string, int>();
            _chains = [];
            _counts = [];
        }
        else if (keepShared)
        {
            _jumps = FirewallRules.Hooks.Select(h => h.Builtin).ToHashSet();
            _chains.UnionWith(_shared);
            foreach (var (chain, count) in FirewallRules.SharedCounts(_options, next.Values)) _counts[chain] = count;
        }
    }

    private async Task<Dictionary<string, FirewallRules.Entry>> EntriesAsync(CancellationToken ct)
    {
        if (_entries is not null) return _entries;
        var save6 = _ipv6 ? Command.RunAsync(_save6.Value, ["-t", "filter"], ct) : null;
        var result = await Command.RunAsync(_save.Value, [], ct).ConfigureAwait(false);
        if (!result.Succeeded) throw new FirewallException($"iptables-save failed ({result.ExitCode}): {result.Stderr.Trim()}");
        if (save6 is not null)
        {
            var r6 = await save6.ConfigureAwait(false);
            if (!r6.Succeeded) throw new FirewallException($"ip6tables-save failed ({r6.ExitCode}): {r6.Stderr.Trim()}");
            _v6 = Ip6Rules.Parse(_options.Prefix, r6.Stdout);
        }
        var state = FirewallRules.Parse(_options.Prefix, result.Stdout);
        _jumps = [.. state.JumpsPresent];
        _jumpCopies = state.JumpCopies;
        _chains = [.. state.Chains];
        _counts = new Dictionary<string, int>(state.RuleCounts);
        return _entries = new Dictionary<string, FirewallRules.Entry>(state.Entries);
    }

    private Task RestoreAsync(string batch, string what, CancellationToken ct) => RestoreAsync(_restore.Value, "iptables-restore", batch, what, ct);

    private Task Restore6Async(string batch, string what, CancellationToken ct) => RestoreAsync(_restore6.Value, "ip6tables-restore", batch, what, ct);

    private async Task RestoreAsync(string tool, string name, string batch, string what, CancellationToken ct)
    {
        using var file = Sys.MemfdWithContent($"garden-{name}", batch);
        // -w takes an optional number: give one, or it swallows the file name.
        var result = await Command.RunAsync(tool, ["--noflush", "-w", "10", "/proc/self/fd/3"], new CommandOutput(ExtraFiles: [file]), ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            _entries = null; // the kernel may hold something else than we thought: read it again next time
            throw new FirewallException($"{name} refused the {what} ({result.ExitCode}): {result.Stderr.Trim()}");
        }
    }

    /// <summary>The connection tracking table, sized for every container's share (<see cref="FirewallOptions.ConntrackFloor"/>):
    /// on a host where nothing tracked flows before, the kernel made it only now, with these rules.</summary>
    private void RaiseConntrack()
    {
        if (_options.ConntrackFloor > 0 && File.Exists(_conntrackMax)) Garden.Linux.Host.KernelFloor.Raise(_conntrackMax, _options.ConntrackFloor);
    }

    private static void EnableForwarding()
    {
        const string path = "/proc/sys/net/ipv4/ip_forward";
        if (File.ReadAllText(path).Trim() != "1") File.WriteAllText(path, "1");
    }
}
