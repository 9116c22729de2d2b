namespace Garden.Linux.Rootfs;

/// <summary>A container's private root: an overlay of a shared read-only base and its own read-write layer.</summary>
public interface IRootfsProvider
{
    /// <summary>Mounts the root for <paramref name="handle"/> under its depot directory; returns the mount point.
    /// The read-write layer goes to <paramref name="layerDir"/> (a disk-limited filesystem), else into the depot.</summary>
    Task<string> CreateAsync(string handle, string baseRootfs, string depotDir, string? layerDir, CancellationToken ct);

    /// <summary>Unmounts and removes the root; what is already gone counts as done.</summary>
    Task DestroyAsync(string handle, string depotDir, CancellationToken ct);

    /// <summary>True when the root is mounted (used to reconcile after a restart).</summary>
    bool IsMounted(string depotDir);
}

/// <summary>A bad rootfs request (the base directory is missing or not a directory).</summary>
public sealed class RootfsException(string message) : Exception(message);
