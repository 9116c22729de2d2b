using System.Text.Json;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>The images, the registry (Debian's docker-registry on 127.0.0.1, a temp config) and one gardend that trusts
/// it over plain HTTP, for the class.</summary>
public sealed class ImageFixture : IAsyncLifetime
{
    public TestImages? Images { get; private set; }
    public RegistryServer? Registry { get; private set; }
    public Gardend? Daemon { get; private set; }

    public async Task InitializeAsync()
    {
        if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return;
        Images = await TestImages.BuildAsync();
        Registry = await RegistryServer.StartAsync();
        await Images.PushAsync(Registry.Port);
        Daemon = new Gardend($$"""garden { registry { insecure = ["{{Registry.Host}}"] } }""");
        await Daemon.StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (Daemon is not null)
        {
            foreach (var h in (await Daemon.CliAsync("list")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                await Daemon.CliAsync("destroy", h);
            await Daemon.DisposeAsync();
        }
        if (Registry is not null) await Registry.DisposeAsync();
        Images?.Dispose();
    }
}

/// <summary>Containers from images: a registry, an OCI layout, an oci-archive and a docker-archive, each through gardend,
/// unprivileged (user namespace): the three layers stacked, the whiteout applied, the config's Env, WorkingDir and User
/// as Run's defaults, the image's owners as the image says, Entrypoint/Cmd in Info. Bad references, missing tags,
/// corrupt blobs are clear errors that leave nothing; the store survives kill -9 mid-pull.</summary>
public sealed class ImageTests(ImageFixture fx) : IClassFixture<ImageFixture>
{
    private Gardend D => fx.Daemon!;
    private TestImages Images => fx.Images!;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private const string Show = "ls /srv; cat /etc/motd; echo \"$GREETING\"; pwd; id -u; stat -c '%u:%g %a' /srv/owned; " +
                                "cat /srv/gone 2>/dev/null || echo gone; ls -ld / | cut -c1-10";

    private string[] References() =>
    [
        $"docker://{fx.Registry!.Host}/test/img:{TestImages.Tag}",
        $"oci://{Images.Layout}:{TestImages.Tag}",
        $"oci-archive://{Images.OciArchive}:{TestImages.Tag}",
        $"docker-archive://{Images.DockerArchive}:{TestImages.DockerName}",
    ];

    [InstallFact]
    public async Task A_container_runs_from_a_registry_an_oci_layout_and_both_archive_kinds()
    {
        foreach (var reference in References())
        {
            var h = Unique("img");
            var created = await D.CliAsync("create", "--handle", h, "--image", reference);
            Assert.True(created.ExitCode == 0, $"{reference}: {created}");
            try
            {
                var r = await D.CliAsync("run", h, "--", "sh", "-c", Show);
                Assert.True(r.ExitCode == 0, $"{reference}: {r}");
                Assert.Equal(["dir", "keep", "owned", "layer three", "from-image", "/srv", "1000", "1000:1000 640", "gone", "drwxr-xr-x"],
                    r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
                // a Run's own env, dir and user win over the image's
                var own = await D.CliAsync("run", h, "--env", "GREETING=mine", "--dir", "/", "--user", "root", "--", "sh", "-c", "echo $GREETING; pwd; id -u; echo x > /srv/new");
                Assert.True(own.ExitCode == 0, own.ToString());
                Assert.Equal("mine\n/\n0\n", own.Stdout);
                var info = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement.GetProperty("properties");
                Assert.Equal("[\"/bin/sh\"]", info.GetProperty("garden.image.entrypoint").GetString());
                Assert.Equal("[\"-c\",\"echo hi\"]", info.GetProperty("garden.image.cmd").GetString());
                // the manifest's digest as the source serves it (skopeo's push re-encodes it; a docker archive names its config)
                var digest = info.GetProperty("garden.image.digest").GetString()!;
                Assert.Matches(@"\Asha256:[0-9a-f]{64}\z", digest);
                if (reference.StartsWith("oci", StringComparison.Ordinal)) Assert.Equal(Images.Manifest().Digest, digest);
            }
            finally
            {
                Assert.Equal(0, (await D.CliAsync("destroy", h)).ExitCode);
            }
            Assert.Empty(Host.Leftovers(D, h));
        }
        // the layers are shared, once each, however many references named them; nothing is held once they are gone
        var store = Path.Combine(D.StateDir, "images");
        Assert.Equal(3, Directory.GetDirectories(Path.Combine(store, "layers")).Length);
        Assert.Empty(Directory.GetFiles(Path.Combine(store, "refs")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(store, "tmp")));
        // nobody but root may look into the store
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(store));
    }

    [InstallFact]
    public async Task Two_containers_share_the_layers_and_neither_sees_what_the_other_writes()
    {
        var reference = References()[1];
        var (a, b) = (Unique("share"), Unique("share"));
        Assert.Equal(0, (await D.CliAsync("create", "--handle", a, "--image", reference)).ExitCode);
        Assert.Equal(0, (await D.CliAsync("create", "--handle", b, "--image", reference)).ExitCode);
        try
        {
            Assert.Equal(0, (await D.CliAsync("run", a, "--user", "root", "--", "sh", "-c", "rm /srv/keep; echo a > /etc/motd")).ExitCode);
            Assert.Equal("keep\nlayer three\n", (await D.CliAsync("run", b, "--", "sh", "-c", "cat /srv/keep /etc/motd")).Stdout);
            // the image's files are the image's: container root cannot change the shared layer through its overlay
            var store = Path.Combine(D.StateDir, "images", "layers");
            Assert.All(Directory.GetDirectories(store), l => Assert.False(File.Exists(Path.Combine(l, "fs/srv/keep")) && File.ReadAllText(Path.Combine(l, "fs/srv/keep")) != "keep\n"));
            Assert.Contains(Directory.GetDirectories(store), l => File.Exists(Path.Combine(l, "fs/etc/motd")) && File.ReadAllText(Path.Combine(l, "fs/etc/motd")) == "layer three\n");
        }
        finally
        {
            await D.CliAsync("destroy", a);
            await D.CliAsync("destroy", b);
        }
    }

    [InstallFact]
    public async Task A_privileged_container_from_an_image_sees_the_same_files_and_owners()
    {
        var h = Unique("priv");
        var created = await D.CliAsync("create", "--handle", h, "--privileged", "--image", References()[2]);
        Assert.True(created.ExitCode == 0, created.ToString());
        try
        {
            var r = await D.CliAsync("run", h, "--", "sh", "-c", Show);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Equal(["dir", "keep", "owned", "layer three", "from-image", "/srv", "1000", "1000:1000 640", "gone", "drwxr-xr-x"],
                r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            // its image's size (its layers', as the store counted them) is the disk its image takes in Metrics
            var metrics = JsonDocument.Parse((await D.CliAsync("--json", "metrics", h)).Stdout).RootElement;
            var image = ulong.Parse(metrics.GetProperty("diskImageBytes").ToString());
            using var held = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(D.StateDir, "images", "refs", h + ".json")));
            Assert.Equal(held.RootElement.GetProperty("bytes").GetUInt64(), image);
            Assert.InRange(image, 1_000_000UL, 50_000_000UL);
        }
        finally { Assert.Equal(0, (await D.CliAsync("destroy", h)).ExitCode); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task With_per_container_id_ranges_image_files_keep_their_owners_inside()
    {
        await using var own = new OwnDaemon(new Gardend("garden.user-namespace.mapping = per-container"));
        var d = own.D;
        await d.StartAsync();
        var h = Unique("range");
        var created = await d.CliAsync("create", "--handle", h, "--image", References()[1]);
        Assert.True(created.ExitCode == 0, created.ToString());
        var r = await d.CliAsync("run", h, "--", "sh", "-c", "stat -c '%u:%g' /srv/owned /bin/busybox; id -u; cat /srv/owned; head -c 1 /proc/self/uid_map >/dev/null; awk '{print $2}' /proc/self/uid_map");
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["1000:1000", "0:0", "1000", "hello"], lines[..4]);
        Assert.NotEqual("0", lines[4]);   // container root is not host root: a range of its own
        Assert.Equal(0, (await d.CliAsync("destroy", h)).ExitCode);
        Assert.Empty(Host.Leftovers(d, h));
    }

    [InstallFact]
    public async Task Bad_references_missing_tags_and_corrupt_blobs_are_clear_errors_that_leave_nothing()
    {
        var configCorrupt = Images.CorruptCopy(Images.Manifest().Config);
        (string Reference, string Error)[] cases =
        [
            ("docker://no-host-here", "names no host"),
            ("ftp://127.0.0.1/x", "unknown scheme \"ftp\""),
            ($"docker://{fx.Registry!.Host}/test/img:nope", "tag \"nope\" not found"),
            ($"docker://{fx.Registry!.Host}/test/other:v1", "not found"),
            ($"oci://{Images.Layout}:nope", "no image tagged \"nope\""),
            ("oci:///nonexistent/layout:v1", "not an OCI image layout"),
            ("oci-archive:///nonexistent.tar", "does not exist"),
            ($"docker-archive://{Images.DockerArchive}:other/name:v9", "no image tagged \"other/name:v9\""),
            ($"oci://{configCorrupt}:{TestImages.Tag}", "digest mismatch"),
            // a registry that is not there (a closed port): unreachable, said so
            ($"docker://127.0.0.1:{FakeRegistry.FreePort()}/test/img:v1", "cannot reach"),
        ];
        foreach (var (reference, error) in cases)
        {
            var h = Unique("bad");
            var r = await D.CliAsync("create", "--handle", h, "--image", reference);
            Assert.True(r.ExitCode != 0, $"{reference}: {r}");
            Assert.Contains(error, r.Stderr);
            Assert.Contains("image", r.Stderr);
            Assert.DoesNotContain(h, (await D.CliAsync("list")).Stdout);
            Assert.Empty(Host.Leftovers(D, h));
        }
        var store = Path.Combine(D.StateDir, "images");
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(store, "tmp")));
        Assert.Empty(Directory.GetFiles(Path.Combine(store, "refs")));
        Assert.Equal("pong", (await D.CliAsync("ping")).ExitCode == 0 ? "pong" : "down");
    }

    [InstallFact]
    public async Task A_corrupt_layer_and_a_registry_that_drops_the_connection_mid_layer_are_clear_errors()
    {
        await using var registry = new FakeRegistry(Images.Layout) { DropLayerAfter = 50_000 };
        // a daemon of its own that keeps no unused layer (max-bytes 0): a layer already in the store is not fetched again
        await using var own = new OwnDaemon(new Gardend($$"""
            garden.registry.insecure = ["{{registry.Host}}"]
            garden.image-store.max-bytes = 0
            """));
        var d = own.D;
        await d.StartAsync();
        var top = Images.Manifest().Layers[^1];
        var corrupt = await d.CliAsync("create", "--image", $"oci://{Images.CorruptCopy(top)}:{TestImages.Tag}");
        Assert.True(corrupt.ExitCode != 0, corrupt.ToString());
        Assert.Contains($"image: oci://", corrupt.Stderr);
        Assert.Contains($"layer {top}", corrupt.Stderr);
        // the good layers under it were whole and verified, but nothing holds them: with max-bytes 0 they are gone
        Assert.Empty(Directory.GetDirectories(Path.Combine(d.StateDir, "images", "layers")));
        var r = await d.CliAsync("create", "--image", $"docker://{registry.Host}/test/img:v1");
        Assert.True(r.ExitCode != 0, r.ToString());
        Assert.Contains($"image: docker://{registry.Host}/test/img:v1: layer {Images.Manifest().Layers[0]}: the transfer broke off", r.Stderr);
        Assert.Empty((await d.CliAsync("list")).Stdout.Trim());
        var store = Path.Combine(d.StateDir, "images");
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(store, "tmp")));
        Assert.DoesNotContain(Directory.GetDirectories(Path.Combine(store, "layers")), l => Images.Manifest().Layers[0].EndsWith(Path.GetFileName(l)));
        Assert.Empty(Directory.GetFiles(Path.Combine(store, "refs")));
    }

    [InstallFact]
    public async Task The_layer_store_survives_kill_9_mid_pull()
    {
        await using var registry = new FakeRegistry(Images.Layout) { LayerChunkDelay = TimeSpan.FromMilliseconds(15) };
        await using var own = new OwnDaemon(new Gardend($$"""garden { registry { insecure = ["{{registry.Host}}"] } }"""));
        var d = own.D;
        await d.StartAsync();
        var reference = $"docker://{registry.Host}/test/img:v1";
        var tmp = Path.Combine(d.StateDir, "images", "tmp");
        var h = Unique("kill");
        using (var cli = d.StartCli("create", "--handle", h, "--image", reference))
        {
            // wait until a layer is half unpacked, then kill -9
            var until = DateTime.UtcNow.AddSeconds(30);
            while (!Directory.GetDirectories(tmp).Any(t => Path.GetFileName(t).StartsWith("layer-") && Directory.Exists(Path.Combine(t, "fs/bin"))))
            {
                Assert.True(DateTime.UtcNow < until, "no layer was being unpacked");
                await Task.Delay(20);
            }
            await d.StopAsync(kill: true);
            await cli.WaitForExitAsync();
        }
        Assert.NotEmpty(Directory.GetDirectories(tmp));   // the half layer the crash left
        registry.LayerChunkDelay = TimeSpan.Zero;
        await d.StartAsync();
        Assert.Empty(Directory.GetFileSystemEntries(tmp));   // removed at start, never used
        await d.CliAsync("destroy", h);   // whatever recovery made of the interrupted create
        var h2 = Unique("again");
        var created = await d.CliAsync("create", "--handle", h2, "--image", reference);
        Assert.True(created.ExitCode == 0, created.ToString());
        var r = await d.CliAsync("run", h2, "--", "sh", "-c", Show);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.StartsWith("dir\nkeep\nowned\nlayer three\n", r.Stdout);
        Assert.Equal(0, (await d.CliAsync("destroy", h2)).ExitCode);
        Assert.Empty(Host.Leftovers(d, h));
        Assert.Empty(Host.Leftovers(d, h2));
        Assert.Empty(Directory.GetFileSystemEntries(tmp));
    }

    /// <summary>A daemon of the test's own: whatever a failing test left in it is destroyed before it stops.</summary>
    private sealed class OwnDaemon(Gardend d) : IAsyncDisposable
    {
        public Gardend D => d;

        public async ValueTask DisposeAsync()
        {
            if (d.Running)
                foreach (var h in (await d.CliAsync("list")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    await d.CliAsync("destroy", h);
            await d.DisposeAsync();
        }
    }
}
