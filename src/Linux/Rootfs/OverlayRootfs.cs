using Garden.Linux.Disk;
using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Rootfs;

/// <summary>overlayfs: lowerdir = the base rootfs (never written), upperdir/workdir in the container's depot (or on its
/// disk-limit file system), mounted nosuid,nodev. For a container with a user namespace the lower layer is an idmapped
/// mount of the base (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount): container root sees the host's root-owned
/// base as its own, nothing of the base is copied or chowned, and what it writes lands in the upper layer owned by its
/// host uid. The idmapped mount is unmounted again once the overlay holds it (overlayfs keeps a private clone of each layer).</summary>
public sealed class OverlayRootfs : IRootfsProvider
{
    public Task<string> CreateAsync(string handle, RootfsLayers baseRootfs, RootfsPaths paths, string? layerDir, UserNamespaceRoot? userns,
        CancellationToken ct)
    {
        if (baseRootfs.Dirs.Count == 0) throw new RootfsException("a rootfs needs at least one layer");
        foreach (var dir in baseRootfs.Dirs)
            if (!Directory.Exists(dir))
                throw new RootfsException($"rootfs {(baseRootfs.FromImage ? "layer " : "")}{dir} does not exist or is not a directory");
        var single = baseRootfs.Dirs[0];
        if (!baseRootfs.FromImage && !File.Exists(Path.Combine(single, "bin/sh")) && !Directory.Exists(Path.Combine(single, "bin")) && !Directory.Exists(Path.Combine(single, "usr")))
            throw new RootfsException($"rootfs {single} does not look like a root filesystem (no bin/ or usr/)");
        var (uid, gid) = userns is null ? (0u, 0u) : (userns.Uid, userns.Gid);
        var upper = Path.Combine(layerDir ?? paths.Depot, "upper");
        var work = Path.Combine(layerDir ?? paths.Depot, "work");
        foreach (var dir in new[] { upper, work })
        {
            Directory.CreateDirectory(dir);
            // The upper layer's root is the container's "/": 0755, owned by container root.
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            Sys.Lchown(dir, uid, gid);
        }
        Directory.CreateDirectory(paths.MountDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(paths.MountDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Sys.Lchown(paths.MountDir, uid, gid);
        var target = paths.MountPoint;
        Directory.CreateDirectory(target);

        // overlayfs takes the top layer first
        var lowers = baseRootfs.Dirs.Select(Path.GetFullPath).Reverse().ToList();
        var idmapped = new List<string>();
        try
        {
            if (userns is not null || baseRootfs.FromImage)
            {
                // one view per layer: idmapped for a user namespace; for an image also when privileged, so that the mount
                // options name short paths (a page holds them all: LowerMount/N instead of the store's long ones). A plain
                // base is at LowerMount itself (as before images), an image's layers at LowerMount/N.
                using var ns = userns is null ? null : Sys.Open(userns.UserNamespacePath, LibC.O_RDONLY);
                if (baseRootfs.FromImage) Directory.CreateDirectory(paths.LowerMount);
                for (var i = 0; i < lowers.Count; i++)
                {
                    var view = baseRootfs.FromImage ? Path.Combine(paths.LowerMount, i.ToString(System.Globalization.CultureInfo.InvariantCulture)) : paths.LowerMount;
                    Directory.CreateDirectory(view);
                    using (var tree = Sys.OpenTreeClone(lowers[i]))
                    {
                        Sys.MountSetattr(tree, (ns is null ? MountAttr.None : MountAttr.Idmap) | MountAttr.NoSuid | MountAttr.NoDev, ns, lowers[i]);
                        Sys.MoveMount(tree, view);
                    }
                    idmapped.Add(view);
                    lowers[i] = view;
                }
            }
            var data = $"lowerdir={string.Join(':', lowers.Select(Escape))},upperdir={Escape(upper)},workdir={Escape(work)}";
            Sys.Mount("overlay", target, "overlay", LibC.MS_NOSUID | LibC.MS_NODEV, data);
        }
        finally
        {
            foreach (var view in idmapped)
            {
                Sys.Unmount(view, LibC.MNT_DETACH);
                DeleteEmptyDir(view);
            }
            if (idmapped.Count > 0 && baseRootfs.FromImage) DeleteEmptyDir(paths.LowerMount);
        }
        return Task.FromResult(target);
    }

    public Task DestroyAsync(string handle, RootfsPaths paths, CancellationToken ct)
    {
        // an image's idmapped layer views (LowerMount/N) first: a crash may have left them mounted, and the tree is removed below
        if (Directory.Exists(paths.LowerMount))
            foreach (var view in Directory.GetDirectories(paths.LowerMount))
                if (MountTable.IsMountPoint(view)) Sys.Unmount(view, LibC.MNT_DETACH);
        foreach (var mount in new[] { paths.MountPoint, paths.LowerMount, paths.LegacyMountPoint })
            if (Directory.Exists(mount)) Sys.Unmount(mount, LibC.MNT_DETACH);
        foreach (var dir in new[] { paths.MountDir, paths.LegacyMountPoint, Path.Combine(paths.Depot, "upper"), Path.Combine(paths.Depot, "work") })
            DeleteTree(dir);
        return Task.CompletedTask;
    }

    public bool IsMounted(string mountPoint) => MountTable.IsMountPoint(mountPoint);

    /// <summary>Creates the directory under which every container's <see cref="RootfsPaths.MountDir"/> lives: mode 0711
    /// (container roots must traverse it, nobody may list it), as must be every directory above it.</summary>
    public static void PrepareMountDir(string mountDir)
    {
        const UnixFileMode traverse = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        mountDir = Path.GetFullPath(mountDir);
        // Missing parents are made 0711 too (a umask of 077 would make them 0700).
        var missing = new Stack<string>();
        for (var d = mountDir; d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) missing.Push(d);
        while (missing.TryPop(out var d))
        {
            Directory.CreateDirectory(d);
            File.SetUnixFileMode(d, traverse);
        }
        File.SetUnixFileMode(mountDir, traverse);
        for (var d = Path.GetDirectoryName(mountDir); d is not null; d = Path.GetDirectoryName(d))
            if ((File.GetUnixFileMode(d) & UnixFileMode.OtherExecute) == 0)
                throw new RootfsException($"garden.mount-dir {mountDir}: container root (an unprivileged host uid) must be able to traverse " +
                    $"{d}, whose mode is {Convert.ToString((int)File.GetUnixFileMode(d), 8)}; give it o+x (e.g. 0711) or choose another mount-dir");
    }

    /// <summary>Removes a tree without following symlinks (the upper layer holds whatever the container wrote).</summary>
    public static void DeleteTree(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (DirectoryNotFoundException) { }
    }

    private static void DeleteEmptyDir(string dir)
    {
        try { Directory.Delete(dir); }
        catch (DirectoryNotFoundException) { }
        catch (IOException) { /* still a mount point after a lazy unmount: DestroyAsync removes it */ }
    }

    private static string Escape(string path) => path.Replace(@"\", @"\\").Replace(",", @"\,").Replace(":", @"\:");
}
