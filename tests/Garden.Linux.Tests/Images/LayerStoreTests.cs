using System.Formats.Tar;
using System.Security.Cryptography;
using Garden.Linux.Images;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests.Images;

/// <summary>The layer store and the unpacker against the real file system (as root: owners, whiteout devices, trusted.*
/// xattrs), with images built by umoci, a registry written for the test, and layers written by hand for the attacks.</summary>
public sealed class LayerStoreTests : IAsyncLifetime
{
    private TestImages? _images;
    private string _dir = "";
    private TestImages Images => _images!;
    private string StoreDir => Path.Combine(_dir, "store");

    public async Task InitializeAsync()
    {
        if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return;
        _dir = TestPaths.NewTempDir("layers");
        _images = await TestImages.BuildAsync();
    }

    public Task DisposeAsync()
    {
        _images?.Dispose();
        if (_dir.Length > 0) Directory.Delete(_dir, recursive: true);
        return Task.CompletedTask;
    }

    private LayerStore Store(ulong max = 1UL << 40) =>
        new(StoreDir, max, new ImageSources(ImageSources.Client(), ["127.0.0.1"]));

    private static ImageReference Oci(string layout) => ImageReference.Parse($"oci://{layout}:{TestImages.Tag}");

    private string[] Tmp() => Directory.GetFileSystemEntries(Path.Combine(StoreDir, "tmp"));
    private string[] Layers() => Directory.GetDirectories(Path.Combine(StoreDir, "layers"));

    [InstallFact]
    public async Task An_oci_layout_is_unpacked_layer_by_layer_with_whiteouts_owners_and_modes()
    {
        var store = Store();
        var image = await store.PullAsync("c1", Oci(Images.Layout), default);
        Assert.Equal(3, image.LayerDirs.Length);
        Assert.Equal(["GREETING=from-image"], image.Config.Env.Where(e => e.StartsWith("GREETING")));
        Assert.Equal(("/srv", "1000:1000"), (image.Config.WorkingDir, image.Config.User));
        var (bottom, middle, top) = (image.LayerDirs[0], image.LayerDirs[1], image.LayerDirs[2]);
        Assert.True(File.Exists(Path.Combine(bottom, "bin/busybox")));
        Assert.Equal("one\n", File.ReadAllText(Path.Combine(bottom, "srv/gone")));
        // the whiteout: a 0/0 character device in the layer that deletes the file
        Assert.Equal("character special file 0,0", (await Stat("%F %t,%T", Path.Combine(middle, "srv/gone"))));
        Assert.Equal("1000:1000 640", await Stat("%u:%g %a", Path.Combine(middle, "srv/owned")));
        Assert.Equal("layer three\n", File.ReadAllText(Path.Combine(top, "etc/motd")));
        Assert.True(image.Bytes > 1_000_000);
        Assert.Equal(image.Bytes, store.BytesOf("c1"));
        Assert.Empty(Tmp());
    }

    [InstallFact]
    public async Task A_second_pull_downloads_nothing_and_concurrent_pulls_download_each_layer_once()
    {
        await using var registry = new FakeRegistry(Images.Layout) { LayerChunkDelay = TimeSpan.FromMilliseconds(1) };
        var store = Store();
        var reference = ImageReference.Parse($"docker://{registry.Host}/test/img:v1");
        var pulls = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => store.PullAsync($"p{i}", reference, default)));
        Assert.All(pulls, p => Assert.Equal(pulls[0].LayerDirs.ToArray(), p.LayerDirs.ToArray()));
        foreach (var layer in Images.Manifest().Layers) Assert.Equal(1, registry.BlobRequests(layer));
        await store.PullAsync("p5", reference, default);
        foreach (var layer in Images.Manifest().Layers) Assert.Equal(1, registry.BlobRequests(layer));
        Assert.Equal(3, Layers().Length);
        Assert.Empty(Tmp());
    }

    [InstallFact]
    public async Task A_registry_that_asks_for_a_bearer_token_gets_one_from_its_realm()
    {
        await using var registry = new FakeRegistry(Images.Layout) { RequireToken = true };
        var image = await Store().PullAsync("t", ImageReference.Parse($"docker://{registry.Host}/test/img:v1"), default);
        Assert.Equal(3, image.LayerDirs.Length);
        Assert.True(registry.TokenRequests >= 1);
    }

    [InstallFact]
    public async Task A_missing_tag_a_corrupt_blob_and_a_dropped_connection_are_clear_errors_that_leave_nothing()
    {
        var store = Store();
        var e = await Assert.ThrowsAsync<ImageException>(() => store.PullAsync("m", ImageReference.Parse($"oci://{Images.Layout}:nope"), default));
        Assert.Contains("no image tagged \"nope\"", e.Message);
        Assert.Contains(TestImages.Tag, e.Message);   // it names the tags there are

        var top = Images.Manifest().Layers[^1];
        var corrupt = Images.CorruptCopy(top);
        e = await Assert.ThrowsAsync<ImageException>(() => store.PullAsync("m", Oci(corrupt), default));
        Assert.Contains($"layer {top}", e.Message);
        Assert.True(e.Message.Contains("mismatch") || e.Message.Contains("not a valid gzip-compressed tar"), e.Message);

        var freshDir = Path.Combine(_dir, "fresh");
        var fresh = new LayerStore(freshDir, 1UL << 40, new ImageSources(ImageSources.Client(), ["127.0.0.1"]));
        await using (var registry = new FakeRegistry(Images.Layout) { DropLayerAfter = 100_000 })
        {
            var reference = ImageReference.Parse($"docker://{registry.Host}/test/img:v1");
            e = await Assert.ThrowsAsync<ImageException>(() => fresh.PullAsync("m", reference, default));
            Assert.Contains(Images.Manifest().Layers[0], e.Message);
            Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(freshDir, "tmp")));
            Assert.DoesNotContain(Directory.GetDirectories(Path.Combine(freshDir, "layers")), l => Images.Manifest().Layers[0].EndsWith(Path.GetFileName(l)));
            Assert.Empty(Directory.GetFiles(Path.Combine(freshDir, "refs")));
            await using var registry2 = new FakeRegistry(Images.Layout);
            e = await Assert.ThrowsAsync<ImageException>(() => store.PullAsync("m", ImageReference.Parse($"docker://{registry2.Host}/test/img:nope"), default));
            Assert.Contains("tag \"nope\" not found", e.Message);
        }
        Assert.Empty(Tmp());
        Assert.Equal(0UL, store.BytesOf("m"));
        // the corrupt top layer is not kept; the good layers below it may be (they were whole and verified)
        Assert.DoesNotContain(Layers(), l => Path.GetFileName(l) == top[7..]);
        Assert.All(Layers(), l => Assert.True(File.Exists(Path.Combine(l, "size"))));
    }

    [InstallFact]
    public async Task A_changed_byte_anywhere_in_a_layer_is_a_digest_mismatch_naming_the_layer()
    {
        // wherever the byte is, the tar under it may fail first (a garbled header, a name or a mode no file system takes,
        // gzip's own check): the error is still the blob that is not what its digest says, and nothing is left
        var store = Store();
        foreach (var layer in new[] { Images.Manifest().Layers[0], Images.Manifest().Layers[^1] })
            foreach (var at in new[] { 0.0, 0.001, 0.01, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.99, 1.0 })
            {
                var e = await Assert.ThrowsAsync<ImageException>(() => store.PullAsync("m", Oci(Images.CorruptCopy(layer, at)), default));
                Assert.True(e.Message.Contains($"layer {layer}: digest mismatch"), $"at {at}: {e.Message}");
                Assert.Empty(Tmp());
            }
        Assert.Empty(Directory.GetFiles(Path.Combine(StoreDir, "refs")));
    }

    [InstallFact]
    public async Task A_registry_that_stops_sending_fails_the_pull_after_the_stall_timeout_and_leaves_nothing()
    {
        await using var registry = new FakeRegistry(Images.Layout) { LayerChunkDelay = TimeSpan.FromSeconds(3) };
        var dir = Path.Combine(_dir, "stalled");
        var store = new LayerStore(dir, 1UL << 40, new ImageSources(ImageSources.Client(), ["127.0.0.1"], TimeSpan.FromSeconds(1)));
        var e = await Assert.ThrowsAsync<ImageException>(() => store.PullAsync("s", ImageReference.Parse($"docker://{registry.Host}/test/img:v1"), default));
        Assert.Contains("the registry sent nothing for 1s", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(dir, "tmp")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(dir, "layers")));
    }

    [InstallFact]
    public async Task Leftovers_of_a_crash_are_removed_at_start_and_unused_layers_go_beyond_the_limit()
    {
        var store = Store(max: 0);
        await store.PullAsync("a", Oci(Images.Layout), default);
        Directory.CreateDirectory(Path.Combine(StoreDir, "tmp", "layer-half-unpacked/fs/bin"));
        Assert.Single(Store().RemoveLeftovers());
        Assert.Empty(Tmp());
        Assert.Equal(3, Layers().Length);   // held by "a"
        await store.ReleaseAsync("a", default);
        Assert.Empty(Layers());             // max-bytes 0: nothing unused is kept
        await store.ReleaseAsync("a", default);   // again: done already

        // a ref left by a container that is gone (a crash between a destroy's release and its end) holds nothing
        await store.PullAsync("gone", Oci(Images.Layout), default);
        File.WriteAllText(Path.Combine(StoreDir, "refs", "half.json.tmp"), "{");
        var restarted = new LayerStore(StoreDir, 0, new ImageSources(ImageSources.Client(), []), live: h => h != "gone");
        Assert.Single(restarted.RemoveLeftovers());
        Assert.Equal(3, Layers().Length);
        await restarted.CollectAsync();
        Assert.Empty(Layers());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(StoreDir, "refs")));
    }

    // ---------------------------------------------------------------- attacks: layers that try to leave their directory

    [RootFact]
    public async Task A_layer_writing_through_a_symlinked_parent_is_refused()
    {
        var e = await Unpack(w =>
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "etc") { LinkName = _dir });
            w.WriteEntry(TarFile("etc/evil", "x"));
        });
        Assert.Contains("is a symlink", e!.Message);
        Assert.False(File.Exists(Path.Combine(_dir, "evil")));
    }

    [RootFact]
    public async Task A_hard_link_to_a_file_outside_the_layer_is_refused()
    {
        var e = await Unpack(w => w.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "passwd") { LinkName = "../../../../etc/passwd" }));
        Assert.Contains("\"..\"", e!.Message);
        e = await Unpack(w =>
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "link") { LinkName = "/etc/passwd" });
            w.WriteEntry(new PaxTarEntry(TarEntryType.HardLink, "passwd") { LinkName = "link" });
        });
        Assert.Contains("not a file of this layer", e!.Message);
    }

    [RootFact]
    public async Task Device_nodes_of_a_layer_are_not_made()
    {
        var root = Path.Combine(_dir, "devices");
        Assert.Null(await Unpack(w =>
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "dev/mem") { DeviceMajor = 1, DeviceMinor = 1, Mode = (UnixFileMode)0x1b6 });
            w.WriteEntry(new PaxTarEntry(TarEntryType.BlockDevice, "dev/sda") { DeviceMajor = 8, DeviceMinor = 0 });
            w.WriteEntry(TarFile("etc/ok", "ok"));
        }, root));
        Assert.False(File.Exists(Path.Combine(root, "dev/mem")));
        Assert.False(File.Exists(Path.Combine(root, "dev/sda")));
        Assert.True(File.Exists(Path.Combine(root, "etc/ok")));
    }

    [InstallFact]
    public async Task A_docker_archive_naming_a_layer_outside_itself_is_refused()
    {
        var archive = Path.Combine(_dir, "evil.tar");
        await using (var f = File.Create(archive))
        await using (var w = new TarWriter(f, TarEntryFormat.Pax))
        {
            await w.WriteEntryAsync(TarFile("manifest.json", "[{\"Config\":\"config.json\",\"RepoTags\":[\"evil:1\"],\"Layers\":[\"../../../../etc/passwd\"]}]"));
            await w.WriteEntryAsync(TarFile("config.json", "{}"));
        }
        var e = await Assert.ThrowsAsync<ImageException>(() => Store().PullAsync("x", ImageReference.Parse($"docker-archive://{archive}"), default));
        Assert.Contains("\"..\"", e.Message);
        Assert.Empty(Tmp());
    }

    [RootFact]
    public async Task Absolute_and_dotdot_names_are_refused()
    {
        Assert.Contains("absolute path", (await Unpack(w => w.WriteEntry(TarFile("/tmp/garden-test-evil", "x"))))!.Message);
        Assert.Contains("\"..\"", (await Unpack(w => w.WriteEntry(TarFile("a/../../garden-test-evil", "x"))))!.Message);
        Assert.False(File.Exists("/tmp/garden-test-evil"));
    }

    [RootFact]
    public async Task An_opaque_directory_and_a_whiteout_hide_the_layers_below_in_a_real_overlay()
    {
        var lower = Path.Combine(_dir, "lower");
        var upper = Path.Combine(_dir, "upper");
        Assert.Null(await Unpack(w =>
        {
            w.WriteEntry(TarFile("d/old", "old"));
            w.WriteEntry(TarFile("e/f", "f"));
            w.WriteEntry(TarFile("e/g", "g"));
        }, lower));
        Assert.Null(await Unpack(w =>
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "d/") { Mode = (UnixFileMode)0x1ed });
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "d/.wh..wh..opq"));
            w.WriteEntry(TarFile("d/new", "new"));
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "e/.wh.f"));
        }, upper));
        Assert.False(File.Exists(Path.Combine(upper, "d/.wh..wh..opq")));
        Assert.Equal("character special file 0,0", await Stat("%F %t,%T", Path.Combine(upper, "e/f")));
        var merged = Path.Combine(_dir, "merged");
        Directory.CreateDirectory(merged);
        Garden.Linux.Interop.Sys.Mount("overlay", merged, "overlay", Tmds.Linux.LibC.MS_RDONLY, $"lowerdir={upper}:{lower}");
        try
        {
            Assert.Equal(["new"], Directory.GetFiles(Path.Combine(merged, "d")).Select(f => Path.GetFileName(f)!).ToArray());
            Assert.Equal(["g"], Directory.GetFiles(Path.Combine(merged, "e")).Select(f => Path.GetFileName(f)!).ToArray());
        }
        finally { Garden.Linux.Interop.Sys.Unmount(merged, Tmds.Linux.LibC.MNT_DETACH); }
    }

    [RootFact]
    public async Task A_directory_a_layer_needs_but_does_not_name_keeps_its_owner_and_mode_from_the_layers_below()
    {
        var lower = Path.Combine(_dir, "below");
        var host = Path.Combine(_dir, "host-dir");   // a directory of the host, owned and moded unlike any default
        Directory.CreateDirectory(host);
        Garden.Linux.Interop.Sys.Lchown(host, 4321, 4321);
        File.SetUnixFileMode(host, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherExecute);
        Assert.Null(await Unpack(w =>
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "home/") { Mode = (UnixFileMode)0x1ed });
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "home/vcap/") { Mode = (UnixFileMode)0x1c0, Uid = 1000, Gid = 1001 });
            w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "etc") { LinkName = host });
        }, lower));
        var upper = Path.Combine(_dir, "above");
        Assert.Null(await Unpack(w =>
        {
            w.WriteEntry(TarFile("home/vcap/app", "x"));
            w.WriteEntry(TarFile("etc/x/y", "y"));   // "etc" below is a symlink: never followed to the host
        }, upper, [lower]));
        Assert.Equal("1000:1001 700", await Stat("%u:%g %a", Path.Combine(upper, "home/vcap")));
        Assert.Equal("0:0 755", await Stat("%u:%g %a", Path.Combine(upper, "etc")));
    }

    private static PaxTarEntry TarFile(string name, string content) =>
        new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content)) };

    /// <summary>Unpacks a tar written by <paramref name="write"/> (with its true digests); returns the refusal, or null.</summary>
    private async Task<ImageException?> Unpack(Action<TarWriter> write, string? root = null, IReadOnlyList<string>? below = null)
    {
        if (_dir.Length == 0) _dir = TestPaths.NewTempDir("layers");
        var tar = new MemoryStream();
        using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true)) write(w);
        var bytes = tar.ToArray();
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        root ??= Path.Combine(_dir, "layer-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        try
        {
            await LayerUnpacker.UnpackAsync(new MemoryStream(bytes), new Descriptor("application/vnd.oci.image.layer.v1.tar", digest, bytes.Length), digest, root, default, below);
            return null;
        }
        catch (ImageException e) { return e; }
    }

    private static async Task<string> Stat(string format, string path) =>
        (await Command.RunAsync("/usr/bin/stat", ["-c", format, path])).Stdout.Trim();
}
