using System.Diagnostics;
using Garden.Linux.Disk;
using Garden.Linux.Interop;
using Tmds.Linux;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;
using Xunit.Abstractions;

namespace Garden.Linux.Tests;

/// <summary>The loop-mounted ext4 disk limit against the real kernel (root): every test works under its own
/// /tmp/garden-test-disk-* and Dispose removes mounts, loop devices and files even when the test failed.</summary>
public sealed class DiskQuotaTests(ITestOutputHelper output) : IDisposable
{
    private const ulong MiB = 1UL << 20;

    private readonly string root = Sys.Realpath(TestPaths.NewTempDir("disk"));
    private readonly LoopDiskQuota quota = new();

    private string Depot(string name) => Path.Combine(root, name);

    public void Dispose()
    {
        try
        {
            foreach (var depot in Directory.Exists(root) ? Directory.GetDirectories(root) : [])
                try { quota.DestroyAsync("cleanup", depot, CancellationToken.None).GetAwaiter().GetResult(); }
                catch (Exception e) { output.WriteLine($"cleanup of {depot}: {e.Message}"); }
        }
        finally
        {
            // Whatever DestroyAsync missed: mounts below root (innermost first), loop devices on files below root.
            foreach (var m in MountTable.MountPoints().Where(m => m.StartsWith(root + "/", StringComparison.Ordinal)).Reverse().ToList())
                Sys.Unmount(m, LibC.MNT_DETACH);
            foreach (var (device, _) in LoopsUnder(root))
                LoopDevice.Detach(device);
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Loop devices whose backing file lies below <paramref name="dir"/>.</summary>
    private static List<(string Device, string File)> LoopsUnder(string dir)
    {
        var found = new List<(string, string)>();
        foreach (var block in Directory.EnumerateDirectories("/sys/block", "loop*"))
        {
            try
            {
                var file = File.ReadAllText(Path.Combine(block, "loop", "backing_file")).TrimEnd('\n');
                if (file.StartsWith(dir + "/", StringComparison.Ordinal)) found.Add(("/dev/" + Path.GetFileName(block), file));
            }
            catch (IOException) { }
        }
        return found;
    }

    private static ulong HostFree() { var s = Sys.Statvfs("/tmp"); return s.Bavail * s.Frsize; }

    private static (string FsType, string Source, string Options) MountOf(string mountPoint)
    {
        var line = File.ReadLines("/proc/self/mountinfo").Last(l => l.Split(' ')[4] == mountPoint).Split(' ');
        var dash = Array.IndexOf(line, "-");
        return (line[dash + 1], line[dash + 2], line[5]);
    }

    /// <summary>Bytes the file really occupies on the host (st_blocks * 512).</summary>
    private static async Task<ulong> Allocated(string file)
    {
        var r = await Command.RunAsync(Command.Resolve("stat"), ["-c", "%b", file]);
        Assert.True(r.Succeeded, r.Stderr);
        return ulong.Parse(r.Stdout.Trim()) * 512;
    }

    private static void WriteMiB(FileStream f, int mib)
    {
        var chunk = new byte[MiB];
        Random.Shared.NextBytes(chunk);
        for (var i = 0; i < mib; i++) f.Write(chunk);
    }

    private void AssertGone(string depot)
    {
        Assert.False(quota.IsMounted(depot));
        Assert.Null(quota.Usage(depot));
        Assert.DoesNotContain(MountTable.MountPoints(), m => m.StartsWith(depot + "/", StringComparison.Ordinal));
        // an autoclear loop device lets go of its file once the kernel drops its last reference, which a loaded
        // machine may do a moment after the unmount returned
        for (var i = 0; i < 500 && LoopsUnder(depot).Count > 0; i++) Thread.Sleep(10);
        Assert.Empty(LoopsUnder(depot));
        Assert.False(File.Exists(Path.Combine(depot, "disk.img")));
        Assert.False(Directory.Exists(Path.Combine(depot, "disk")));
    }

    [RootFact]
    public unsafe void The_kernel_structs_have_the_sizes_of_the_headers()
    {
        Assert.Equal(232, sizeof(LoopInfo64));
        Assert.Equal(304, sizeof(LoopConfig));
        Assert.Equal(112, sizeof(statvfs)); // Tmds.LibC's, as glibc lays it out on 64-bit Linux
    }

    [RootFact]
    public void Mountinfo_escapes_are_undone()
    {
        Assert.Equal("/tmp/a b\\c", MountTable.Unescape(@"/tmp/a\040b\134c"));
        Assert.Equal("/plain", MountTable.Unescape("/plain"));
    }

    [RootFact]
    public async Task A_64MiB_limit_is_a_mounted_ext4_of_about_that_size()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);

        Assert.Equal(Path.Combine(depot, "disk"), mountPoint);
        Assert.True(quota.IsMounted(depot));
        var (fsType, source, options) = MountOf(mountPoint);
        Assert.Equal("ext4", fsType);
        Assert.StartsWith("/dev/loop", source);
        Assert.Contains("nosuid", options.Split(','));
        Assert.Contains("nodev", options.Split(','));
        var loop = $"/sys/block/{Path.GetFileName(source)}/loop";
        Assert.Equal("1", File.ReadAllText($"{loop}/autoclear").Trim());
        Assert.Equal(Path.Combine(depot, "disk.img"), File.ReadAllText($"{loop}/backing_file").Trim());
        output.WriteLine($"{source}: dio={File.ReadAllText($"{loop}/dio").Trim()}");

        var (used, size) = quota.Usage(depot)!.Value;
        Assert.InRange(size, 52 * MiB, 64 * MiB); // minus inode tables, journal, bitmaps
        Assert.InRange(used, 0UL, 8 * MiB); // journal and metadata
        Assert.True(await Allocated(Path.Combine(depot, "disk.img")) < 8 * MiB, "the backing file is sparse");

        await File.WriteAllBytesAsync(Path.Combine(mountPoint, "f"), new byte[10 * MiB]);
        Assert.InRange(quota.Usage(depot)!.Value.Used, used + 10 * MiB, used + 12 * MiB);
    }

    [RootFact]
    public async Task Writing_past_the_limit_fails_with_ENOSPC_and_the_host_does_not_fill_up()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        var before = HostFree();

        var e = Assert.Throws<IOException>(() =>
        {
            using var f = new FileStream(Path.Combine(mountPoint, "big"), FileMode.Create, FileAccess.Write, FileShare.None, 1);
            WriteMiB(f, 100);
            f.Flush(flushToDisk: true);
        });
        Assert.Contains("No space left on device", e.Message);

        // Everything written lives in the backing file, which cannot outgrow the limit.
        var image = await Allocated(Path.Combine(depot, "disk.img"));
        output.WriteLine($"backing file holds {image / MiB} MiB; host free dropped {(long)(before - HostFree()) / (long)MiB} MiB");
        Assert.True(image <= 65 * MiB, $"backing file holds {image} bytes");
        Assert.True((long)before - (long)HostFree() < (long)(64 + 16) * (long)MiB, "host free space moved by more than the limit");

        await quota.DestroyAsync("c1", depot, CancellationToken.None);
        var freed = (long)HostFree() - (long)before;
        output.WriteLine($"after destroy host free is {freed / (long)MiB} MiB above the start");
        Assert.True(freed > -16 * (long)MiB, "destroy gave the space back");
        AssertGone(depot);
    }

    [RootFact]
    public async Task Growing_works_online_while_a_file_is_open_and_written()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        if (!Capabilities.Effective(Capabilities.SysResource))
        {
            output.WriteLine("NOT RUN: no CAP_SYS_RESOURCE here, the kernel refuses online ext4 resizing (see the next test)");
            return;
        }

        using (var f = new FileStream(Path.Combine(mountPoint, "data"), FileMode.Create, FileAccess.Write, FileShare.Read, 1))
        {
            WriteMiB(f, 40);
            await quota.ResizeAsync("c1", depot, 128 * MiB, CancellationToken.None);
            WriteMiB(f, 60); // 100 MiB in all: would not fit in 64 MiB
            f.Flush(flushToDisk: true);
        }

        var (used, size) = quota.Usage(depot)!.Value;
        Assert.InRange(size, 110 * MiB, 128 * MiB);
        Assert.True(used >= 100 * MiB);
        Assert.Equal((long)(128 * MiB), new FileInfo(Path.Combine(depot, "disk.img")).Length);
        Assert.Equal(100 * (long)MiB, new FileInfo(Path.Combine(mountPoint, "data")).Length);

        await quota.ResizeAsync("c1", depot, 128 * MiB, CancellationToken.None); // same size: nothing to do
        Assert.Equal(size, quota.Usage(depot)!.Value.Size);
    }

    [RootFact]
    public async Task A_grow_the_kernel_refuses_changes_nothing()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        var device = MountOf(mountPoint).Source;
        var size = quota.Usage(depot)!.Value.Size;
        // Without CAP_SYS_RESOURCE the kernel refuses; with it, a resize2fs that fails does the same job.
        var failing = Capabilities.Effective(Capabilities.SysResource) ? new LoopDiskQuota(resize2fsPath: "/bin/false") : quota;

        var e = await Assert.ThrowsAsync<DiskQuotaException>(() => failing.ResizeAsync("c1", depot, 128 * MiB, CancellationToken.None));

        output.WriteLine(e.Message);
        Assert.Contains("c1", e.Message);
        Assert.Equal(size, quota.Usage(depot)!.Value.Size);
        Assert.Equal((long)(64 * MiB), new FileInfo(Path.Combine(depot, "disk.img")).Length);
        Assert.Equal((64 * MiB / 512).ToString(), File.ReadAllText($"/sys/block/{Path.GetFileName(device)}/size").Trim());
    }

    [RootFact]
    public async Task Shrinking_is_refused_and_nothing_changes()
    {
        var depot = Depot("c1");
        await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        var size = quota.Usage(depot)!.Value.Size;

        var e = await Assert.ThrowsAsync<DiskQuotaException>(() => quota.ResizeAsync("c1", depot, 32 * MiB, CancellationToken.None));

        Assert.Equal($"cannot shrink the disk limit of c1 from {64 * MiB} to {32 * MiB}", e.Message);
        Assert.Equal(size, quota.Usage(depot)!.Value.Size);
        Assert.Equal((long)(64 * MiB), new FileInfo(Path.Combine(depot, "disk.img")).Length);
    }

    [RootFact]
    public async Task Destroy_leaves_nothing_behind_and_a_second_destroy_is_fine()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        await File.WriteAllTextAsync(Path.Combine(mountPoint, "f"), "data");

        await quota.DestroyAsync("c1", depot, CancellationToken.None);
        AssertGone(depot);
        await quota.DestroyAsync("c1", depot, CancellationToken.None);
        AssertGone(depot);
        Assert.True(Directory.Exists(depot), "the depot dir itself belongs to the caller");
    }

    [RootFact]
    public async Task Destroy_of_a_depot_that_never_had_a_disk_is_fine()
    {
        var depot = Depot("none");
        Directory.CreateDirectory(depot);
        await quota.DestroyAsync("none", depot, CancellationToken.None);
        await quota.DestroyAsync("missing", Depot("missing"), CancellationToken.None);
        Assert.False(quota.IsMounted(depot));
        Assert.Null(quota.Usage(depot));
    }

    [RootFact]
    public async Task Destroy_after_a_crash_with_everything_still_mounted_cleans_up()
    {
        var depot = Depot("c1");
        await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);

        await new LoopDiskQuota().DestroyAsync("c1", depot, CancellationToken.None); // a new daemon, no memory of c1

        AssertGone(depot);
    }

    [RootFact]
    public async Task Destroy_after_a_crash_between_unmount_and_detach_cleans_up()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        var image = Path.Combine(depot, "disk.img");
        // Unmounted by hand, the device bound to the image again without autoclear: nothing will detach it by itself.
        Sys.Unmount(mountPoint, 0);
        var attach = await Command.RunAsync(Command.Resolve("losetup"), ["-f", "--show", image]);
        Assert.True(attach.Succeeded, attach.Stderr);
        Assert.Single(LoopsUnder(depot));
        Assert.False(quota.IsMounted(depot));

        await new LoopDiskQuota().DestroyAsync("c1", depot, CancellationToken.None);

        AssertGone(depot);
    }

    [RootFact]
    public async Task Destroy_while_a_process_holds_a_file_open_detaches_lazily()
    {
        var depot = Depot("c1");
        var mountPoint = await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        var open = new FileStream(Path.Combine(mountPoint, "busy"), FileMode.Create);
        try
        {
            var destroy = Stopwatch.StartNew();
            await quota.DestroyAsync("c1", depot, CancellationToken.None);
            output.WriteLine($"destroy with a busy mount took {destroy.ElapsedMilliseconds} ms");
            Assert.False(quota.IsMounted(depot));
            Assert.False(File.Exists(Path.Combine(depot, "disk.img")));
        }
        finally
        {
            open.Dispose();
        }
        // The last user gone: the lazily unmounted file system goes, and autoclear frees the device.
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < 200 && LoopsUnder(depot).Count > 0; i++) await Task.Delay(10);
        output.WriteLine($"device freed {sw.ElapsedMilliseconds} ms after the last close");
        Assert.Empty(LoopsUnder(depot));
    }

    [RootFact]
    public async Task A_too_small_limit_is_refused_clearly()
    {
        var depot = Depot("c1");
        var e = await Assert.ThrowsAsync<DiskQuotaException>(() => quota.CreateAsync("c1", depot, 1 * MiB, CancellationToken.None));
        Assert.Contains("c1", e.Message);
        Assert.Contains("1048576", e.Message);
        Assert.Contains("8 MiB", e.Message);
        Assert.False(File.Exists(Path.Combine(depot, "disk.img")));

        await quota.CreateAsync("c2", Depot("c2"), LoopDiskQuota.MinimumBytes, CancellationToken.None);
        Assert.True(quota.IsMounted(Depot("c2")));
    }

    /// <summary>A small disk has no journal (ext4's smallest, 4 MiB, would take most of it): 10 MiB holds 7 MiB of files,
    /// as Garden's suite expects; a large one keeps its journal.</summary>
    [RootFact]
    public async Task A_small_disk_goes_without_a_journal_and_holds_most_of_its_size()
    {
        var small = await quota.CreateAsync("c1", Depot("c1"), 10 * MiB, CancellationToken.None);
        await File.WriteAllBytesAsync(Path.Combine(small, "seven"), new byte[7 * MiB]);
        await Assert.ThrowsAsync<IOException>(() => File.WriteAllBytesAsync(Path.Combine(small, "three-more"), new byte[3 * MiB]));
        var large = await quota.CreateAsync("c2", Depot("c2"), 64 * MiB, CancellationToken.None);
        Assert.Contains("has_journal", Features(Path.Combine(Depot("c2"), "disk.img")));
        Assert.DoesNotContain("has_journal", Features(Path.Combine(Depot("c1"), "disk.img")));
        Assert.True(quota.IsMounted(Depot("c2")) && large.Length > 0);
    }

    private static string Features(string image)
    {
        var psi = new ProcessStartInfo("dumpe2fs", ["-h", image]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output.Split('\n').Single(l => l.StartsWith("Filesystem features:", StringComparison.Ordinal));
    }

    [RootFact]
    public async Task A_failed_create_undoes_its_steps()
    {
        var depot = Depot("c1");
        var broken = new LoopDiskQuota(mkfsPath: "/bin/false");
        var e = await Assert.ThrowsAsync<DiskQuotaException>(() => broken.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None));
        Assert.Contains("c1", e.Message);
        Assert.Contains("/bin/false", e.Message);
        AssertGone(depot);

        // And a create over the leftovers of a crashed one (image present, nothing mounted) starts afresh.
        Directory.CreateDirectory(depot);
        await File.WriteAllTextAsync(Path.Combine(depot, "disk.img"), "junk");
        await quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None);
        Assert.True(quota.IsMounted(depot));
        await Assert.ThrowsAsync<DiskQuotaException>(() => quota.CreateAsync("c1", depot, 64 * MiB, CancellationToken.None));
    }

    [RootFact]
    public async Task A_backing_file_on_tmpfs_works()
    {
        var tmpfs = Depot("tmpfs");
        Directory.CreateDirectory(tmpfs);
        Sys.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=64m");
        try
        {
            var depot = Path.Combine(tmpfs, "c1");
            var mountPoint = await quota.CreateAsync("c1", depot, 32 * MiB, CancellationToken.None);
            var loop = $"/sys/block/{Path.GetFileName(MountOf(mountPoint).Source)}/loop";
            output.WriteLine($"direct I/O on tmpfs (newer kernels support it): {File.ReadAllText($"{loop}/dio").Trim()}");
            await File.WriteAllBytesAsync(Path.Combine(mountPoint, "f"), new byte[4 * MiB]);
            await quota.DestroyAsync("c1", depot, CancellationToken.None);
            AssertGone(depot);
        }
        finally
        {
            Sys.Unmount(tmpfs, LibC.MNT_DETACH);
        }
    }

    [RootFact]
    public async Task Two_containers_at_once_get_different_loop_devices()
    {
        var a = Depot("a");
        var b = Depot("b");
        var mounts = await Task.WhenAll(
            Task.Run(() => quota.CreateAsync("a", a, 32 * MiB, CancellationToken.None)),
            Task.Run(() => quota.CreateAsync("b", b, 32 * MiB, CancellationToken.None)));

        Assert.NotEqual(MountOf(mounts[0]).Source, MountOf(mounts[1]).Source);
        await File.WriteAllTextAsync(Path.Combine(mounts[0], "who"), "a");
        Assert.False(File.Exists(Path.Combine(mounts[1], "who")));

        await Task.WhenAll(quota.DestroyAsync("a", a, CancellationToken.None), quota.DestroyAsync("b", b, CancellationToken.None));
        AssertGone(a);
        AssertGone(b);
    }

    [RootFact]
    public async Task Create_and_destroy_of_a_1GiB_limit_are_quick()
    {
        var creates = new List<double>();
        var destroys = new List<double>();
        for (var i = 0; i < 10; i++)
        {
            var depot = Depot($"t{i}");
            var sw = Stopwatch.StartNew();
            await quota.CreateAsync($"t{i}", depot, 1024 * MiB, CancellationToken.None);
            creates.Add(sw.Elapsed.TotalMilliseconds);
            await File.WriteAllBytesAsync(Path.Combine(depot, "disk", "f"), new byte[MiB]);
            sw.Restart();
            await quota.DestroyAsync($"t{i}", depot, CancellationToken.None);
            destroys.Add(sw.Elapsed.TotalMilliseconds);
            AssertGone(depot);
        }
        static double P50(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
        output.WriteLine($"1 GiB create p50 {P50(creates):F1} ms (all: {string.Join(", ", creates.Select(x => x.ToString("F0")))})");
        output.WriteLine($"1 GiB destroy p50 {P50(destroys):F1} ms (all: {string.Join(", ", destroys.Select(x => x.ToString("F0")))})");
        Assert.True(P50(creates) < 2000);
        Assert.True(P50(destroys) < 2000);
    }
}

/// <summary>What the actors rely on, against LoopDiskQuota and FakeDiskQuota alike.</summary>
public abstract class DiskQuotaContract : IDisposable
{
    protected const ulong MiB = 1UL << 20;
    protected readonly string Root = Sys.Realpath(TestPaths.NewTempDir("disk"));
    protected abstract IDiskQuota Quota { get; }

    [GatedFact]
    public async Task Create_resize_usage_destroy()
    {
        var depot = Path.Combine(Root, "c1");
        Assert.False(Quota.IsMounted(depot));
        Assert.Null(Quota.Usage(depot));

        Assert.Equal(Path.Combine(depot, "disk"), await Quota.CreateAsync("c1", depot, 32 * MiB, CancellationToken.None));
        Assert.True(Quota.IsMounted(depot));
        var (used, size) = Quota.Usage(depot)!.Value;
        Assert.InRange(size, 1UL, 32 * MiB);
        Assert.True(used <= size);

        var e = await Assert.ThrowsAsync<DiskQuotaException>(() => Quota.ResizeAsync("c1", depot, 16 * MiB, CancellationToken.None));
        Assert.Equal($"cannot shrink the disk limit of c1 from {32 * MiB} to {16 * MiB}", e.Message);
        await Quota.ResizeAsync("c1", depot, 32 * MiB, CancellationToken.None);
        Assert.Equal(size, Quota.Usage(depot)!.Value.Size);

        await Quota.DestroyAsync("c1", depot, CancellationToken.None);
        await Quota.DestroyAsync("c1", depot, CancellationToken.None);
        Assert.False(Quota.IsMounted(depot));
        Assert.Null(Quota.Usage(depot));
    }

    public void Dispose()
    {
        foreach (var depot in Directory.GetDirectories(Root))
            Quota.DestroyAsync("cleanup", depot, CancellationToken.None).GetAwaiter().GetResult();
        Directory.Delete(Root, recursive: true);
    }
}

[RequiresRoot]
public sealed class RealDiskQuotaContract : DiskQuotaContract
{
    protected override IDiskQuota Quota { get; } = new LoopDiskQuota();
}

public sealed class FakeDiskQuotaContract : DiskQuotaContract
{
    protected override IDiskQuota Quota { get; } = new FakeDiskQuota(new CallLog());
}
