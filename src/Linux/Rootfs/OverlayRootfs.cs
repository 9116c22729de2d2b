using Garden.Linux.Interop;

namespace Garden.Linux.Rootfs;

/// <summary>overlayfs: lowerdir = the base rootfs (never written), upperdir/workdir in the container's depot.</summary>
public sealed class OverlayRootfs : IRootfsProvider
{
    public static string MountPoint(string depotDir) => Path.Combine(depotDir, "rootfs");

    public Task<string> CreateAsync(string handle, string baseRootfs, string depotDir, string? layerDir, CancellationToken ct)
    {
        if (!Directory.Exists(baseRootfs))
            throw new RootfsException($"rootfs {baseRootfs} does not exist or is not a directory");
        if (!File.Exists(Path.Combine(baseRootfs, "bin/sh")) && !Directory.Exists(Path.Combine(baseRootfs, "bin")) && !Directory.Exists(Path.Combine(baseRootfs, "usr")))
            throw new RootfsException($"rootfs {baseRootfs} does not look like a root filesystem (no bin/ or usr/)");
        var upper = Path.Combine(layerDir ?? depotDir, "upper");
        var work = Path.Combine(layerDir ?? depotDir, "work");
        var target = MountPoint(depotDir);
        Directory.CreateDirectory(upper);
        Directory.CreateDirectory(work);
        Directory.CreateDirectory(target);
        var data = $"lowerdir={Escape(Path.GetFullPath(baseRootfs))},upperdir={Escape(upper)},workdir={Escape(work)}";
        Sys.Mount("overlay", target, "overlay", MountFlags.NoDev, data);
        return Task.FromResult(target);
    }

    public Task DestroyAsync(string handle, string depotDir, CancellationToken ct)
    {
        var target = MountPoint(depotDir);
        if (Directory.Exists(target)) Sys.Unmount(target, UnmountFlags.Detach);
        foreach (var dir in new[] { target, Path.Combine(depotDir, "upper"), Path.Combine(depotDir, "work") })
            DeleteTree(dir);
        return Task.CompletedTask;
    }

    public bool IsMounted(string depotDir)
    {
        var target = MountPoint(depotDir);
        return File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ')[4] == target);
    }

    /// <summary>Removes a tree without following symlinks (the upper layer holds whatever the container wrote).</summary>
    public static void DeleteTree(string dir)
    {
        try { Directory.Delete(dir, recursive: true); }
        catch (DirectoryNotFoundException) { }
    }

    private static string Escape(string path) => path.Replace(@"\", @"\\").Replace(",", @"\,").Replace(":", @"\:");
}
