namespace Garden.Linux.Disk;

/// <summary>A fixed-size scratch filesystem per container (this kernel has no XFS or ext4 project quotas): a sparse
/// file, formatted ext4, loop-mounted; the overlay's read-write layer lives on it, so writing past it gives ENOSPC
/// inside the container and nothing on the host fills up.</summary>
public interface IDiskQuota
{
    /// <summary>Creates, formats and mounts the filesystem at <c>depotDir/disk</c>; returns the mount point.</summary>
    Task<string> CreateAsync(string handle, string depotDir, ulong bytes, CancellationToken ct);

    /// <summary>Grows a mounted filesystem online. Shrinking throws <see cref="DiskQuotaException"/>.</summary>
    Task ResizeAsync(string handle, string depotDir, ulong bytes, CancellationToken ct);

    /// <summary>Unmounts, detaches the loop device and removes the backing file; what is gone already counts as done.</summary>
    Task DestroyAsync(string handle, string depotDir, CancellationToken ct);

    /// <summary>True when the container's filesystem is mounted.</summary>
    bool IsMounted(string depotDir);

    /// <summary>Bytes used and the filesystem's size, or null when the container has no disk limit.</summary>
    (ulong Used, ulong Size)? Usage(string depotDir);
}

/// <summary>A disk limit that cannot be applied (shrinking, too small, no space for the backing file).</summary>
public sealed class DiskQuotaException(string message, Exception? inner = null) : Exception(message, inner);
