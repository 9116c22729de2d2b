using Garden.Linux.Interop;
using Tmds.Linux;
using Garden.Linux.Process;

namespace Garden.Linux.Disk;

/// <summary>The disk limit as Warden did it: <c>depotDir/disk.img</c>, a sparse file of the limit's size, formatted
/// ext4, bound to a loop device with autoclear (so the device goes away with the last unmount) and mounted nosuid,nodev
/// at <c>depotDir/disk</c>. Growing is online (LOOP_SET_CAPACITY, then resize2fs); shrinking is refused.</summary>
public sealed class LoopDiskQuota : IDiskQuota
{
    /// <summary>The smallest limit: below this the metadata leaves next to nothing for files.</summary>
    public const ulong MinimumBytes = 8UL << 20;

    /// <summary>From this size on the file system has a journal. ext4's smallest journal with 4 KiB blocks is 4 MiB, which
    /// would take most of a small limit (a 10 MiB disk would hold 5 MiB of files; Garden's suite writes 7 MiB into one).
    /// A container's disk lives as long as the container, which a host crash ends anyway, so a small one goes without.</summary>
    public const ulong JournalFromBytes = 64UL << 20;

    private const uint BlockSize = 4096;
    private const string ImageName = "disk.img";
    private const string MountName = "disk";

    private readonly Lazy<string> mkfs;
    private readonly Lazy<string> resize2fs;

    /// <param name="mkfsPath">mkfs.ext4; found in PATH when null.</param>
    /// <param name="resize2fsPath">resize2fs; found in PATH when null.</param>
    public LoopDiskQuota(string? mkfsPath = null, string? resize2fsPath = null)
    {
        mkfs = new(() => Command.Resolve(mkfsPath ?? "mkfs.ext4"));
        resize2fs = new(() => Command.Resolve(resize2fsPath ?? "resize2fs"));
    }

    public async Task<string> CreateAsync(string handle, string depotDir, ulong bytes, CancellationToken ct)
    {
        if (bytes < MinimumBytes)
            throw new DiskQuotaException($"disk limit of {handle}: {bytes} bytes is below the minimum of {MinimumBytes} bytes (8 MiB)");
        if (bytes > long.MaxValue)
            throw new DiskQuotaException($"disk limit of {handle}: {bytes} bytes is too large");

        Directory.CreateDirectory(depotDir);
        var (image, mountPoint) = Paths(depotDir);
        if (MountTable.IsMountPoint(mountPoint))
            throw new DiskQuotaException($"{handle} already has a disk mounted at {mountPoint}");
        await RemoveLeftoversAsync(image, mountPoint).ConfigureAwait(false); // a create or destroy cut short by a crash

        SafeFd? loop = null;
        var mounted = false;
        try
        {
            using (var file = Sys.Open(image, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL, (ushort)(LibC.S_IRUSR | LibC.S_IWUSR)))
            {
                Sys.Ftruncate(file, (long)bytes, image); // sparse: takes no host space until written

                await RunAsync(handle, "format", mkfs.Value,
                    ["-q", "-F", "-m", "0", "-b", BlockSize.ToString(),
                     // A fresh sparse file reads as zeros: nothing to zero or discard, so skip all of it.
                     "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                     .. bytes < JournalFromBytes ? (string[])["-O", "^has_journal"] : [],
                     image], ct).ConfigureAwait(false);

                string device;
                (device, loop) = LoopDevice.Attach(file, image, BlockSize);
                Directory.CreateDirectory(mountPoint);
                // noinit_itable: the inode tables are holes, already zero; no background thread writing them out.
                Sys.Mount(device, mountPoint, "ext4", LibC.MS_NOSUID | LibC.MS_NODEV, "noinit_itable");
                mounted = true;
            }
            return mountPoint;
        }
        catch (Exception e)
        {
            // Undo in reverse: unmount, let autoclear detach the device (closing our handle), remove the file.
            try
            {
                if (mounted) Sys.Unmount(mountPoint, 0);
                loop?.Dispose();
                loop = null;
                await RemoveLeftoversAsync(image, mountPoint).ConfigureAwait(false);
            }
            catch (Exception cleanup)
            {
                throw new DiskQuotaException($"creating the disk of {handle} failed ({e.Message}), and so did cleaning up: {cleanup.Message}", e);
            }
            if (e is DiskQuotaException or OperationCanceledException) throw;
            throw new DiskQuotaException($"creating the disk of {handle} ({bytes} bytes) failed: {e.Message}", e);
        }
        finally
        {
            loop?.Dispose(); // mounted now: the mount holds the device, autoclear detaches it at the last unmount
        }
    }

    public async Task ResizeAsync(string handle, string depotDir, ulong bytes, CancellationToken ct)
    {
        var (image, mountPoint) = Paths(depotDir);
        if (!MountTable.IsMountPoint(mountPoint) || !File.Exists(image))
            throw new DiskQuotaException($"{handle} has no disk mounted at {mountPoint} to resize");
        var current = (ulong)new FileInfo(image).Length;
        if (bytes < current)
            throw new DiskQuotaException($"cannot shrink the disk limit of {handle} from {current} to {bytes}");
        if (bytes == current) return;
        if (bytes > long.MaxValue)
            throw new DiskQuotaException($"disk limit of {handle}: {bytes} bytes is too large");

        var device = MountTable.SourceOf(mountPoint);
        if (device is null || !LoopDevice.FindByBackingFile(image).Contains(device))
            throw new DiskQuotaException($"the disk of {handle} at {mountPoint} is not mounted from a loop device on {image} (source {device})");
        // The kernel's online resize (EXT4_IOC_RESIZE_FS) demands it; refuse before changing anything.
        if (!Capabilities.Effective(Capabilities.SysResource))
            throw new DiskQuotaException($"cannot grow the disk of {handle} online: the kernel requires CAP_SYS_RESOURCE, which gardend lacks");

        var blocksBefore = Sys.Statvfs(mountPoint).Blocks;
        try
        {
            SetLength(image, bytes);
            LoopDevice.SetCapacity(device);
        }
        catch (LinuxException e)
        {
            throw new DiskQuotaException($"growing the disk of {handle} to {bytes} bytes failed: {e.Message}", e);
        }
        try
        {
            // Online: resize2fs finds the mount of the device and asks the kernel to grow the mounted file system.
            await RunAsync(handle, "grow", resize2fs.Value, [device], ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is DiskQuotaException or OperationCanceledException)
        {
            // Nothing grown yet: put the file and the device back, so a failed resize changes nothing.
            if (Sys.Statvfs(mountPoint).Blocks == blocksBefore)
            {
                SetLength(image, current);
                LoopDevice.SetCapacity(device);
                throw;
            }
            // The kernel grew part of it: a file system cannot shrink back, so the (sparse) file stays at the new size.
            throw new DiskQuotaException(
                $"growing the disk of {handle} to {bytes} bytes stopped part way (the limit now reads {bytes}, the file system is smaller): {e.Message}", e);
        }
    }

    private static void SetLength(string image, ulong bytes)
    {
        using var file = Sys.Open(image, LibC.O_RDWR);
        Sys.Ftruncate(file, (long)bytes, image);
    }

    public async Task DestroyAsync(string handle, string depotDir, CancellationToken ct)
    {
        var (image, mountPoint) = Paths(depotDir);
        try
        {
            // Normally one mount; a loop copes with the same disk stacked twice.
            for (var i = 0; i < 8 && MountTable.IsMountPoint(mountPoint); i++)
            {
                try
                {
                    Sys.Unmount(mountPoint, 0);
                }
                catch (LinuxException e) when (e.Errno == LibC.EBUSY)
                {
                    // Something still has files open there: detach it from the tree now; the file system (and with
                    // autoclear, the loop device) goes when the last user lets go.
                    Sys.Unmount(mountPoint, LibC.MNT_DETACH);
                }
            }
            await RemoveLeftoversAsync(image, mountPoint).ConfigureAwait(false);
        }
        catch (Exception e) when (e is LinuxException or IOException or UnauthorizedAccessException)
        {
            throw new DiskQuotaException($"destroying the disk of {handle} failed: {e.Message}", e);
        }
    }

    public bool IsMounted(string depotDir) => MountTable.IsMountPoint(Paths(depotDir).MountPoint);

    public (ulong Used, ulong Size)? Usage(string depotDir)
    {
        var mountPoint = Paths(depotDir).MountPoint;
        if (!MountTable.IsMountPoint(mountPoint)) return null;
        var s = Sys.Statvfs(mountPoint);
        return ((s.Blocks - s.Bfree) * s.Frsize, s.Blocks * s.Frsize);
    }

    /// <summary>Detaches the loop devices still bound to the image (a crash between unmount and detach, or a device
    /// someone bound without autoclear), deletes the image and the empty mount point. Everything missing counts as done.</summary>
    private static async Task RemoveLeftoversAsync(string image, string mountPoint)
    {
        foreach (var device in LoopDevice.FindByBackingFile(image))
        {
            LoopDevice.Detach(device);
            // Detach is synchronous when nobody else has the device open; otherwise it happens at their last close.
            // (A lazily unmounted, still busy file system keeps it: no point waiting long for that.)
            for (var i = 0; i < 5 && LoopDevice.IsBound(device); i++) await Task.Delay(2).ConfigureAwait(false);
        }
        if (File.Exists(image)) File.Delete(image);
        if (Directory.Exists(mountPoint) && !MountTable.IsMountPoint(mountPoint) && !MountTable.HasMountsBelow(mountPoint))
            Directory.Delete(mountPoint, recursive: true);
    }

    private static async Task RunAsync(string handle, string step, string program, IReadOnlyList<string> args, CancellationToken ct)
    {
        var r = await Command.RunAsync(program, args, ct).ConfigureAwait(false);
        if (!r.Succeeded)
            throw new DiskQuotaException(
                $"{step} disk of {handle}: {program} {string.Join(' ', args)} exited {r.ExitCode}: {(r.Stderr + r.Stdout).Trim()}");
    }

    /// <summary>Canonical paths (the form the kernel prints in mountinfo and sysfs).</summary>
    private static (string Image, string MountPoint) Paths(string depotDir)
    {
        var dir = Directory.Exists(depotDir) ? Sys.Realpath(depotDir) : Path.GetFullPath(depotDir);
        return (Path.Combine(dir, ImageName), Path.Combine(dir, MountName));
    }
}
