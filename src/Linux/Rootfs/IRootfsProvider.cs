namespace Garden.Linux.Rootfs;

/// <summary>A container's private root: an overlay of a shared read-only base and its own read-write layer.</summary>
public interface IRootfsProvider
{
    /// <summary>Mounts the root for <paramref name="handle"/> at <see cref="RootfsPaths.MountPoint"/> and returns it.
    /// The read-write layer goes to <paramref name="layerDir"/> (a disk-limited filesystem), else into the depot. With
    /// <paramref name="userns"/>, the base is seen through an idmapped mount of that user namespace (container root sees
    /// it root-owned) and the layer belongs to container root's host ids.</summary>
    Task<string> CreateAsync(string handle, RootfsLayers baseRootfs, RootfsPaths paths, string? layerDir, UserNamespaceRoot? userns,
        CancellationToken ct);

    /// <summary>Unmounts and removes the root (where this build mounts it and where earlier builds did); what is
    /// already gone counts as done.</summary>
    Task DestroyAsync(string handle, RootfsPaths paths, CancellationToken ct);

    /// <summary>True when a root is mounted at <paramref name="mountPoint"/> (used to reconcile after a restart).</summary>
    bool IsMounted(string mountPoint);
}

/// <summary>Where one container's root lives. <see cref="MountDir"/> (<c>&lt;mount-dir&gt;/&lt;handle&gt;</c>, mode 0700,
/// owned by container root's host uid) sits outside the state dir: runc resolves the root's path as container root,
/// which must be able to traverse every directory above it, while no other user of the host can reach into it.</summary>
public sealed record RootfsPaths(string MountDir, string Depot)
{
    public string MountPoint => Path.Combine(MountDir, "rootfs");

    /// <summary>The idmapped view of the base, there only while the overlay is being mounted.</summary>
    public string LowerMount => Path.Combine(MountDir, "lower");

    /// <summary>Where builds before user namespaces mounted the root (their containers keep it there).</summary>
    public string LegacyMountPoint => Path.Combine(Depot, "rootfs");
}

/// <summary>The read-only layers under a container's root, bottom first: one base directory (a plain rootfs, which must
/// look like one), or the layers of an image (each an unpacked layer of the image store).</summary>
public sealed record RootfsLayers(IReadOnlyList<string> Dirs, bool FromImage)
{
    public static implicit operator RootfsLayers(string baseRootfs) => new([baseRootfs], false);

    public override string ToString() => string.Join(':', Dirs);
}

/// <summary>A container's user namespace (its path while held) and its root's ids on the host.</summary>
public sealed record UserNamespaceRoot(string UserNamespacePath, uint Uid, uint Gid)
{
    /// <summary>Makes a host file container root's (a symlink itself, never its target).</summary>
    public void Own(string path) => Garden.Linux.Interop.Sys.Lchown(path, Uid, Gid);
}

/// <summary>A bad rootfs request (the base directory is missing or not a directory).</summary>
public sealed class RootfsException(string message) : Exception(message);
