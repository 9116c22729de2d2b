using Garden.Linux.UserNamespaces;

namespace Garden.Actors.Host;

/// <summary>The user namespace of a new container: pure decisions over <see cref="HostState"/>. With
/// <c>garden.user-namespace.mapping = per-container</c> each container takes the lowest free block of 65536 host ids from
/// the pool (the host journals it with the container's registration, and it returns with its release).</summary>
public sealed record UserIdPool(UserNamespaceSettings Settings)
{
    /// <summary>The mapping for a new container and the block it takes (null: none taken): none for a privileged one.</summary>
    public (IdMapping? Mapping, IdBlock? Block) Allocate(HostState state, bool privileged)
    {
        if (privileged) return (null, null);
        if (Settings.Mapping == UserNamespaceMode.Garden) return (IdMapping.Garden, null);
        var taken = state.IdBlocks.Values.ToList();
        for (var i = 0; i < Settings.Ranges; i++)
        {
            var block = new IdBlock(Settings.FirstHostId + (uint)i * UserNamespaceSettings.RangeSize, UserNamespaceSettings.RangeSize);
            if (!taken.Any(t => t.Overlaps(block))) return (IdMapping.PerContainer(block.HostStart), block);
        }
        throw new GardenException(ErrorKind.ResourceExhausted,
            $"the user id pool is exhausted ({Settings.Ranges} ranges of {UserNamespaceSettings.RangeSize} from {Settings.FirstHostId}); " +
            "destroy a container or configure more garden.user-namespace.per-container.ranges");
    }
}
