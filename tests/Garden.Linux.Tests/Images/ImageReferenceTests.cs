using Garden.Linux.Images;
using Xunit;

namespace Garden.Linux.Tests.Images;

/// <summary>Image references, manifests and registry challenges: pure, no I/O.</summary>
public sealed class ImageReferenceTests
{
    [Theory]
    [InlineData("docker://127.0.0.1:5000/test/img:v1", "127.0.0.1:5000", "test/img", "v1", "")]
    [InlineData("docker://registry.example.com/library/busybox", "registry.example.com", "library/busybox", "latest", "")]
    [InlineData("docker://localhost:5000/a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "localhost:5000", "a", "", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("docker:///busybox", "registry-1.docker.io", "library/busybox", "latest", "")]
    [InlineData("docker:///cfgarden/garden-busybox:1.0", "registry-1.docker.io", "cfgarden/garden-busybox", "1.0", "")]
    public void Registry_references_name_host_repository_and_tag_or_digest(string text, string host, string name, string tag, string digest)
    {
        var r = ImageReference.Parse(text);
        Assert.Equal((ImageKind.Registry, host, name, tag, digest), (r.Kind, r.Host, r.Name, r.Tag, r.Digest));
    }

    [Theory]
    [InlineData("oci:///tmp/layout:v1", ImageKind.OciLayout, "/tmp/layout", "v1")]
    [InlineData("oci:///tmp/layout", ImageKind.OciLayout, "/tmp/layout", "")]
    [InlineData("oci-archive:///tmp/i.tar", ImageKind.OciArchive, "/tmp/i.tar", "")]
    [InlineData("docker-archive:///tmp/i.tar:test/img:v1", ImageKind.DockerArchive, "/tmp/i.tar", "test/img:v1")]
    [InlineData("/usr/local/share/rootfs", ImageKind.Directory, "/usr/local/share/rootfs", "")]
    public void File_references_name_a_path_and_a_tag(string text, ImageKind kind, string path, string tag)
    {
        var r = ImageReference.Parse(text);
        Assert.Equal((kind, path, tag), (r.Kind, r.Path, r.Tag));
    }

    [Theory]
    [InlineData("docker://busybox", "names no host")]
    [InlineData("docker://127.0.0.1:5000/Test/img", "not a valid repository name")]
    [InlineData("docker://127.0.0.1:5000/img:bad tag!", "not a valid tag")]
    [InlineData("docker://127.0.0.1:5000/img@sha256:abc", "not a sha256 digest")]
    [InlineData("docker://h/../../etc:v1", "not a valid repository name")]
    [InlineData("oci://relative/layout", "absolute path")]
    [InlineData("oci:///a/../etc:v1", ". or ..")]
    [InlineData("http://example.com/x", "unknown scheme \"http\"")]
    [InlineData("relative/dir", "neither an absolute directory path")]
    public void Bad_references_are_refused_naming_what_is_wrong(string text, string why)
    {
        var e = Assert.Throws<ImageException>(() => ImageReference.Parse(text));
        Assert.Contains(why, e.Message);
        Assert.Contains(text.Length > 64 ? text[..64] : text, e.Message);
    }

    [Fact]
    public void Insecure_hosts_are_fetched_over_plain_http_the_rest_over_https()
    {
        var r = ImageReference.Parse("docker://127.0.0.1:5000/a:v1");
        Assert.Equal("http://127.0.0.1:5000/", r.RegistryBase(["127.0.0.1:5000"]).ToString());
        Assert.Equal("http://127.0.0.1:5000/", r.RegistryBase(["127.0.0.1"]).ToString());
        Assert.Equal("https://127.0.0.1:5000/", r.RegistryBase(["127.0.0.2:5000"]).ToString());
    }

    [Fact]
    public void A_bearer_challenge_gives_the_token_request()
    {
        var c = RegistryAuth.ParseChallenge("realm=\"https://auth.example.com/token\",service=\"registry.example.com\",scope=\"repository:a/b:pull\"");
        Assert.Equal("https://auth.example.com/token?service=registry.example.com&scope=repository%3Aa%2Fb%3Apull",
            RegistryAuth.TokenUri(c, "repository:x:pull", "r").ToString());
        var noScope = RegistryAuth.ParseChallenge("realm=\"http://h/t\"");
        Assert.Equal("http://h/t?scope=repository%3Ax%3Apull", RegistryAuth.TokenUri(noScope, "repository:x:pull", "r").ToString());
        Assert.Contains("no http(s) realm", Assert.Throws<ImageException>(() =>
            RegistryAuth.TokenUri(RegistryAuth.ParseChallenge("realm=\"file:///etc/passwd\""), "s", "r")).Message);
    }

    [Theory]
    [InlineData("./a/b", LayerEntries.Kind.Entry, "a/b")]
    [InlineData("a/.wh.b", LayerEntries.Kind.Whiteout, "a/b")]
    [InlineData(".wh.top", LayerEntries.Kind.Whiteout, "top")]
    [InlineData("a/b/.wh..wh..opq", LayerEntries.Kind.Opaque, "a/b")]
    [InlineData("a/.wh..wh.plnk", LayerEntries.Kind.Skip, "")]
    [InlineData("./", LayerEntries.Kind.Skip, "")]
    public void Layer_entry_names_are_files_whiteouts_or_opaque_markers(string name, LayerEntries.Kind kind, string path) =>
        Assert.Equal((kind, path), LayerEntries.Classify(name));

    [Theory]
    [InlineData("/etc/passwd", "absolute path")]
    [InlineData("a/../../etc/passwd", "\"..\"")]
    [InlineData("../x", "\"..\"")]
    [InlineData("a/.wh...", "a whiteout of \"..\"")]
    public void Layer_entry_names_that_leave_the_layer_are_refused(string name, string why) =>
        Assert.Contains(why, Assert.Throws<ImageException>(() => LayerEntries.Classify(name)).Message);

    private static byte[] U(string s) => System.Text.Encoding.UTF8.GetBytes(s);

    [Fact]
    public void An_index_resolves_to_this_platform_and_a_manifest_to_its_config_and_layers()
    {
        var d1 = new string('1', 64);
        var d2 = new string('2', 64);
        var index = U($$$"""{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{{{d1}}}","size":1,"platform":{"os":"linux","architecture":"s390x"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{{{d2}}}","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}""");
        Assert.True(ImageManifests.IsIndex(index, null));
        Assert.Equal("sha256:" + d2, ImageManifests.PickPlatform(ImageManifests.ReadIndex(index, "i"), "i").Digest);
        var manifest = U($$$"""{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:{{{d1}}}","size":10},"layers":[{"mediaType":"l","digest":"sha256:{{{d2}}}","size":20}]}""");
        var m = ImageManifests.ReadManifest(manifest, "sha256:x", "m");
        Assert.Equal(("sha256:" + d1, 1, 20L), (m.Config.Digest, m.Layers.Length, m.Layers[0].Size));
        var bad = U($$$"""{"schemaVersion":2,"config":{"digest":"md5:abc"},"layers":[]}""");
        Assert.Contains("not a sha256 digest", Assert.Throws<ImageException>(() => ImageManifests.ReadManifest(bad, "x", "m")).Message);
    }

    [Fact]
    public void The_config_gives_env_dir_user_entrypoint_cmd_and_diff_ids()
    {
        var id = "sha256:" + new string('a', 64);
        var (config, ids) = ImageManifests.ReadConfig(System.Text.Encoding.UTF8.GetBytes($$$"""
            {"config":{"Env":["A=1"],"WorkingDir":"/srv","User":"1000:1000","Entrypoint":["/bin/sh"],"Cmd":["-c","x"]},
             "rootfs":{"type":"layers","diff_ids":["{{{id}}}"]}}
            """), "c");
        Assert.Equal(["A=1"], config.Env.ToArray());
        Assert.Equal(("/srv", "1000:1000"), (config.WorkingDir, config.User));
        Assert.Equal(["/bin/sh"], config.Entrypoint.ToArray());
        Assert.Equal(["-c", "x"], config.Cmd.ToArray());
        Assert.Equal([id], ids.ToArray());
    }
}
