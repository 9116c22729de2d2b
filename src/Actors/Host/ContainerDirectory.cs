using System.Collections.Immutable;

namespace Garden.Actors.Host;

/// <summary>The host's read model for List: each container's lifecycle and properties as the container last told them
/// (<see cref="ContainerChanged"/>). Kept in memory only: containers tell it again when they recover.</summary>
public sealed record ContainerDirectory(ImmutableDictionary<string, ContainerDirectory.Entry> Entries)
{
    public sealed record Entry(ContainerLifecycle Lifecycle, ImmutableDictionary<string, string> Properties);

    public static readonly ContainerDirectory Empty = new(ImmutableDictionary<string, Entry>.Empty);

    internal ContainerDirectory With(HostProtocol.ContainerChanged c) => new(Entries.SetItem(c.Handle, new Entry(c.Lifecycle, c.Properties)));

    public ContainerDirectory Without(string handle) => new(Entries.Remove(handle));

    /// <summary>Handles of the containers that serve (not being created, being destroyed or destroyed) whose properties hold
    /// every key=value of the filter, in ordinal order.</summary>
    public ImmutableArray<string> List(IReadOnlyDictionary<string, string> filter) =>
    [
        .. Entries
            .Where(e => e.Value.Lifecycle is not (ContainerLifecycle.Creating or ContainerLifecycle.Destroying or ContainerLifecycle.Destroyed))
            .Where(e => filter.All(kv => e.Value.Properties.TryGetValue(kv.Key, out var v) && v == kv.Value))
            .Select(e => e.Key)
            .Order(StringComparer.Ordinal),
    ];
}
