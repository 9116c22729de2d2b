using Garden.Linux.Disk;
using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Rootfs;

/// <summary>overlayfs: lowerdir = the base rootfs (never written), upperdir/workdir in the container's depot (or on its
/// disk-limit file system), mounted nosuid,nodev. For a container with a user namespace the lower layer is an idmapped
/// mount of the base (open_tree + mount_setattr(MOUNT_ATTR_IDMAP)): container root sees the host's root-owned base as its
/// own, nothing of the base is copied or chowned, and what it writes lands in the upper layer owned by its host uid. The
/// idmapped tree is handed to overlayfs as an fd, attached nowhere (or, on an older kernel, attached as a view and
/// unmounted again once the overlay holds it: overlayfs keeps a private clone of each layer).</summary>
public sealed class OverlayRootfs : IRootfsProvider
{
    private readonly bool _layersByFd;

    /// <param name="layersByFd">The new mount API with each layer as a parameter (default: when the kernel takes it);
    /// false: one mount(2) option string, with views of the idmapped layers (tests run both).</param>
    public OverlayRootfs(bool? layersByFd = null) => _layersByFd = layersByFd ?? KernelTakesLayersByFd;

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
        if (_layersByFd) MountByFd(lowers, upper, work, target, userns);
        else MountWithViews(lowers, upper, work, target, userns, baseRootfs.FromImage, paths);
        return Task.FromResult(target);
    }

    /// <summary>The new mount API (fsopen/fsconfig/fsmount, overlayfs's <c>lowerdir+</c>): each layer is one parameter, an
    /// idmapped layer is given as the detached tree itself (attached nowhere, so there is no view to make, mount and remove
    /// again, and no length limit on the layers' paths), the upper and work dirs as open directories (no escaping).</summary>
    private static void MountByFd(List<string> lowers, string upper, string work, string target, UserNamespaceRoot? userns)
    {
        using var context = Sys.Fsopen("overlay");
        using var ns = userns is null ? null : Sys.Open(userns.UserNamespacePath, LibC.O_RDONLY);
        // The detached trees stay open until the overlay is made: overlayfs clones each layer's mount then, and a tree
        // whose last fd is closed is unmounted.
        var trees = new List<SafeFd>();
        try
        {
            foreach (var lower in lowers)
            {
                if (ns is null)
                {
                    Sys.FsconfigString(context, "lowerdir+", lower); // one path, taken as it is
                    continue;
                }
                var tree = Sys.OpenTreeClone(lower);
                trees.Add(tree);
                Sys.MountSetattr(tree, MountAttr.Idmap | MountAttr.NoSuid | MountAttr.NoDev, ns, lower);
                Sys.FsconfigFd(context, "lowerdir+", tree, lower);
            }
            using (var upperDir = Sys.Open(upper, LibC.O_PATH | LibC.O_DIRECTORY | LibC.O_NOFOLLOW))
                Sys.FsconfigFd(context, "upperdir", upperDir, upper);
            using (var workDir = Sys.Open(work, LibC.O_PATH | LibC.O_DIRECTORY | LibC.O_NOFOLLOW))
                Sys.FsconfigFd(context, "workdir", workDir, work);
            Sys.FsconfigCreate(context, target);
        }
        finally
        {
            foreach (var tree in trees) tree.Dispose();
        }
        using var mount = Sys.Fsmount(context, MountAttr.NoSuid | MountAttr.NoDev, target);
        Sys.MoveMount(mount, target);
    }

    /// <summary>mount(2) with one option string, for kernels whose overlayfs takes no layer as an fd (older than this host's): each
    /// layer that must be idmapped (or, for an image, shortened to fit the page the options go in) is attached as a view
    /// under <see cref="RootfsPaths.LowerMount"/>, named in the options, and unmounted again once the overlay holds it.</summary>
    private static void MountWithViews(List<string> lowers, string upper, string work, string target, UserNamespaceRoot? userns,
        bool fromImage, RootfsPaths paths)
    {
        var idmapped = new List<string>();
        try
        {
            if (userns is not null || fromImage)
            {
                // one view per layer: idmapped for a user namespace; for an image also when privileged, so that the mount
                // options name short paths (a page holds them all: LowerMount/N instead of the store's long ones). A plain
                // base is at LowerMount itself (as before images), an image's layers at LowerMount/N.
                using var ns = userns is null ? null : Sys.Open(userns.UserNamespacePath, LibC.O_RDONLY);
                if (fromImage) Directory.CreateDirectory(paths.LowerMount);
                for (var i = 0; i < lowers.Count; i++)
                {
                    var view = fromImage ? Path.Combine(paths.LowerMount, i.ToString(System.Globalization.CultureInfo.InvariantCulture)) : paths.LowerMount;
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
            if (idmapped.Count > 0 && fromImage) DeleteEmptyDir(paths.LowerMount);
        }
    }

    /// <summary>Whether this kernel's overlayfs takes a layer as an fd (<c>lowerdir+</c> with FSCONFIG_SET_FD):
    /// asked once, with an O_PATH fd of "/", on a context that is never made.</summary>
    public static bool KernelTakesLayersByFd { get; } = Probe();

    private static bool Probe()
    {
        try
        {
            using var context = Sys.Fsopen("overlay");
            using var root = Sys.Open("/", LibC.O_PATH | LibC.O_DIRECTORY);
            Sys.FsconfigFd(context, "lowerdir+", root, "/");
            return true;
        }
        catch (LinuxException)
        {
            return false;
        }
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
