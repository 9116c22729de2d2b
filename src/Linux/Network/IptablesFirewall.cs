using Garden.Linux.Process;

namespace Garden.Linux.Network;

/// <summary>The firewall with iptables (the host's default backend): every change is one `iptables-restore --noflush`
/// batch, so it applies whole or not at all and never touches chains that are not ours. What the kernel holds of ours
/// is read once (iptables-save) and then kept in step with each batch; after a failed batch it is read again.
/// The shared chains and the jumps into them exist while at least one container has rules.</summary>
public sealed class IptablesFirewall : IFirewall
{
    private readonly FirewallOptions _options;
    private readonly Lazy<string> _restore;
    private readonly Lazy<string> _save;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private Dictionary<string, FirewallRules.Entry>? _entries;
    private HashSet<string> _jumps = [];
    private HashSet<string> _chains = [];

    public IptablesFirewall(FirewallOptions options, string? iptablesRestore = null, string? iptablesSave = null)
    {
        if (ContainerNetwork.PrefixProblem(options.Prefix) is { } problem) throw new ArgumentException($"network prefix {problem}");
        _options = options;
        _restore = new(() => Command.Resolve(iptablesRestore ?? "iptables-restore"));
        _save = new(() => Command.Resolve(iptablesSave ?? "iptables-save"));
    }

    public async Task ApplyAsync(ContainerFirewall container, CancellationToken ct)
    {
        foreach (var r in container.NetOut) r.Validated();
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await RetryOnceAsync(async () =>
            {
                var entries = await EntriesAsync(ct).ConfigureAwait(false);
                var next = new Dictionary<string, FirewallRules.Entry>(entries) { [container.Network.Handle] = FirewallRules.EntryFor(container.Network) };
                var batch = FirewallRules.Batch(_options, next.Values, [container], [], _jumps, removeBase: false);
                await RestoreAsync(batch, $"rules of {container.Network.Handle}", ct).ConfigureAwait(false);
                if (_jumps.Count < FirewallRules.Hooks.Length) EnableForwarding();
                _entries = next;
                _jumps = FirewallRules.Hooks.Select(h => h.Builtin).ToHashSet();
                _chains.Add(container.Network.OutChain);
                _chains.Add(container.Network.NatChain);
            }).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>A batch built from a stale view (someone else changed our chains) fails whole; read the kernel and try once more.</summary>
    private static async Task RetryOnceAsync(Func<Task> change)
    {
        try
        {
            await change().ConfigureAwait(false);
        }
        catch (FirewallException)
        {
            await change().ConfigureAwait(false);
        }
    }

    public async Task RemoveAsync(ContainerNetwork network, CancellationToken ct)
    {
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await RetryOnceAsync(async () =>
            {
                var entries = await EntriesAsync(ct).ConfigureAwait(false);
                var next = new Dictionary<string, FirewallRules.Entry>(entries);
                next.Remove(network.Handle);
                await RemoveCoreAsync(next, [(network.OutChain, network.NatChain)], network.Handle, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

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
            var shared = FirewallRules.Hooks.Select(h => FirewallRules.Chain(_options.Prefix, h.Suffix)).ToHashSet();
            var orphans = _chains.Where(c => !kept.Contains(c) && !shared.Contains(c)).ToList();
            if (dead.Count == 0 && orphans.Count == 0) return [];
            // A chain name alone says which table it lives in ({p}-o-: filter, {p}-n-: nat); pair each with a name that is
            // declared and deleted in the other table (an empty chain that does not exist: declaring creates it, -X removes it).
            var remove = orphans.Select(c => c.StartsWith(_options.Prefix + "-o-", StringComparison.Ordinal)
                ? (c, _options.Prefix + "-n-" + c[(_options.Prefix.Length + 3)..])
                : (_options.Prefix + "-o-" + c[(_options.Prefix.Length + 3)..], c)).Distinct().ToList();
            await RemoveCoreAsync(next, remove, "leftover containers", ct).ConfigureAwait(false);
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

    private async Task RemoveCoreAsync(Dictionary<string, FirewallRules.Entry> next, IReadOnlyList<(string, string)> chains, string what,
        CancellationToken ct)
    {
        var removeBase = next.Count == 0;
        if (removeBase && _jumps.Count == 0 && !_chains.Any()) return; // nothing of ours in the kernel
        var batch = FirewallRules.Batch(_options, next.Values, [], chains, _jumps, removeBase);
        await RestoreAsync(batch, $"removing the rules of {what}", ct).ConfigureAwait(false);
        _entries = next;
        foreach (var (o, n) in chains) { _chains.Remove(o); _chains.Remove(n); }
        if (removeBase)
        {
            _jumps = [];
            _chains = [];
        }
        else _jumps = FirewallRules.Hooks.Select(h => h.Builtin).ToHashSet();
    }

    private async Task<Dictionary<string, FirewallRules.Entry>> EntriesAsync(CancellationToken ct)
    {
        if (_entries is not null) return _entries;
        var result = await Command.RunAsync(_save.Value, [], ct).ConfigureAwait(false);
        if (!result.Succeeded) throw new FirewallException($"iptables-save failed ({result.ExitCode}): {result.Stderr.Trim()}");
        var state = FirewallRules.Parse(_options.Prefix, result.Stdout);
        _jumps = [.. state.JumpsPresent];
        _chains = [.. state.Chains];
        return _entries = new Dictionary<string, FirewallRules.Entry>(state.Entries);
    }

    private async Task RestoreAsync(string batch, string what, CancellationToken ct)
    {
        var file = Path.Combine(Path.GetTempPath(), $"garden-iptables-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        await File.WriteAllTextAsync(file, batch, ct).ConfigureAwait(false);
        try
        {
            // -w takes an optional number: give one, or it swallows the file name.
            var result = await Command.RunAsync(_restore.Value, ["--noflush", "-w", "10", file], ct).ConfigureAwait(false);
            if (!result.Succeeded)
            {
                _entries = null; // the kernel may hold something else than we thought: read it again next time
                throw new FirewallException($"iptables-restore refused the {what} ({result.ExitCode}): {result.Stderr.Trim()}");
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static void EnableForwarding()
    {
        const string path = "/proc/sys/net/ipv4/ip_forward";
        if (File.ReadAllText(path).Trim() != "1") File.WriteAllText(path, "1");
    }
}
