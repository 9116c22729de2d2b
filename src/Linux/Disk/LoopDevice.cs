using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Disk;

/// <summary>Loop devices through their ioctls (no losetup): attach a backing file with autoclear, find the devices
/// bound to a file through sysfs, detach.</summary>
internal static class LoopDevice
{
    private const string Control = "/dev/loop-control";
    private const int MaxAttempts = 64;

    /// <summary>Binds <paramref name="backing"/> to a free loop device with autoclear (and direct I/O) set. The returned
    /// handle keeps the device alive: with autoclear, closing it before the filesystem is mounted detaches the device again,
    /// which is exactly the undo a failed create wants.</summary>
    public static (string Path, SafeFd Handle) Attach(SafeFd backing, string backingPath, uint blockSize)
    {
        using var control = Sys.Open(Control, LibC.O_RDWR);
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var n = Sys.LoopControlGetFree(control);
            var path = $"/dev/loop{n}";
            var loop = Sys.TryOpen(path, LibC.O_RDWR);
            if (loop is null) continue; // removed between GET_FREE and open
            try
            {
                bool bound;
                try
                {
                    bound = Sys.LoopConfigure(loop, path, backing, LoopFlags.AutoClear | LoopFlags.DirectIo, blockSize);
                }
                catch (LinuxException e) when (e.Errno == LibC.EINVAL)
                {
                    // A backing file system without O_DIRECT support: bind buffered.
                    bound = Sys.LoopConfigure(loop, path, backing, LoopFlags.AutoClear, blockSize);
                }
                if (bound) return (path, loop);
            }
            catch
            {
                loop.Dispose();
                throw;
            }
            loop.Dispose(); // EBUSY: another process took it between GET_FREE and LOOP_CONFIGURE
        }
        throw new LinuxException("ioctl(LOOP_CONFIGURE)", backingPath, LibC.EBUSY);
    }

    /// <summary>The loop devices (/dev/loopN) whose backing file is <paramref name="backingPath"/> (canonical path),
    /// including ones whose file has been deleted since.</summary>
    public static List<string> FindByBackingFile(string backingPath)
    {
        var found = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories("/sys/block", "loop*"))
        {
            string text;
            try { text = File.ReadAllText(Path.Combine(dir, "loop", "backing_file")); }
            catch (IOException) { continue; } // not bound (no loop/ dir or no backing_file), or gone meanwhile
            var file = text.TrimEnd('\n');
            if (file.EndsWith(" (deleted)", StringComparison.Ordinal)) file = file[..^" (deleted)".Length];
            if (file == backingPath) found.Add("/dev/" + Path.GetFileName(dir));
        }
        return found;
    }

    public static bool IsBound(string devicePath) =>
        File.Exists($"/sys/block/{Path.GetFileName(devicePath)}/loop/backing_file");

    /// <summary>Detaches a device; free or vanished devices count as done. With other openers left (a lazily unmounted,
    /// still busy file system) the kernel detaches it at their last close.</summary>
    public static void Detach(string devicePath)
    {
        using var loop = Sys.TryOpen(devicePath, LibC.O_RDONLY);
        if (loop is null) return;
        Sys.LoopClearFd(loop, devicePath);
    }

    public static void SetCapacity(string devicePath)
    {
        using var loop = Sys.Open(devicePath, LibC.O_RDONLY);
        Sys.LoopSetCapacity(loop, devicePath);
    }
}
