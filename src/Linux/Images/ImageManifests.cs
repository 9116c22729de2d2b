using System.Collections.Immutable;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;

namespace Garden.Linux.Images;

/// <summary>A blob as a manifest names it.</summary>
public sealed record Descriptor(string MediaType, string Digest, long Size)
{
    /// <summary>The 64 hex digits of a sha256 digest (checked: they name a file under the store).</summary>
    public string Hex => ImageReference.IsDigest(Digest) ? Digest[7..]
        : throw new ImageException($"\"{Digest}\" is not a sha256 digest (only sha256 is supported)");
}

/// <summary>What the image config gives a container: defaults for every Run (Env, WorkingDir, User) and what it says to
/// run (Entrypoint, Cmd: shown in Info).</summary>
public sealed record ImageConfig(ImmutableArray<string> Env, string WorkingDir, string User, ImmutableArray<string> Entrypoint,
    ImmutableArray<string> Cmd)
{
    public static readonly ImageConfig None = new([], "", "", [], []);
}

/// <summary>An image's manifest resolved to one platform: its digest, its config blob and its layers (bottom first).</summary>
public sealed record ResolvedImage(string ManifestDigest, Descriptor Config, ImmutableArray<Descriptor> Layers);

/// <summary>Reading manifests, indexes and configs (OCI and Docker schema 2). Pure: bytes in, records out; anything
/// malformed is an <see cref="ImageException"/> naming the blob.</summary>
public static class ImageManifests
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json",
        OciIndex = "application/vnd.oci.image.index.v1+json",
        DockerManifest = "application/vnd.docker.distribution.manifest.v2+json",
        DockerList = "application/vnd.docker.distribution.manifest.list.v2+json";

    public static readonly string[] Accepted = [OciManifest, OciIndex, DockerManifest, DockerList];

    /// <summary>The sha256 digest of <paramref name="bytes"/> ("sha256:hex").</summary>
    public static string DigestOf(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Throws unless <paramref name="bytes"/> hash to <paramref name="expected"/>.</summary>
    public static void Verify(ReadOnlySpan<byte> bytes, string expected, string what)
    {
        var actual = DigestOf(bytes);
        if (actual != expected) throw new ImageException($"{what}: digest mismatch: expected {expected}, the content hashes to {actual}");
    }

    /// <summary>True when the document is an index (a list of manifests per platform).</summary>
    public static bool IsIndex(ReadOnlySpan<byte> json, string? mediaType)
    {
        var type = mediaType is { Length: > 0 } m ? m.Split(';')[0].Trim() : MediaTypeOf(json);
        if (type is OciIndex or DockerList) return true;
        if (type is OciManifest or DockerManifest) return false;
        using var doc = Load(json, "manifest");
        return doc.RootElement.TryGetProperty("manifests", out _);
    }

    private static string? MediaTypeOf(ReadOnlySpan<byte> json)
    {
        using var doc = Load(json, "manifest");
        return doc.RootElement.TryGetProperty("mediaType", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
    }

    /// <summary>The manifests an index lists, with their platform and ref name (OCI's org.opencontainers.image.ref.name).</summary>
    public static ImmutableArray<(Descriptor Manifest, string Os, string Arch, string RefName)> ReadIndex(ReadOnlySpan<byte> json, string what)
    {
        using var doc = Load(json, what);
        if (!doc.RootElement.TryGetProperty("manifests", out var list) || list.ValueKind != JsonValueKind.Array)
            throw new ImageException($"{what}: an index without a \"manifests\" array");
        return [.. list.EnumerateArray().Select(m =>
        {
            var d = ReadDescriptor(m, what);
            string os = "", arch = "", name = "";
            if (m.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object)
            {
                os = Str(p, "os"); arch = Str(p, "architecture");
            }
            if (m.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object) name = Str(a, "org.opencontainers.image.ref.name");
            return (d, os, arch, name);
        })];
    }

    /// <summary>The entry of an index for this machine (linux and its architecture; one without a platform when the index
    /// has only that), or an error listing what there is.</summary>
    public static Descriptor PickPlatform(ImmutableArray<(Descriptor Manifest, string Os, string Arch, string RefName)> entries, string what)
    {
        var arch = GoArch(RuntimeInformation.OSArchitecture);
        var match = entries.FirstOrDefault(e => e.Os == "linux" && e.Arch == arch).Manifest
            ?? (entries.Length == 1 && entries[0].Os.Length == 0 ? entries[0].Manifest : null);
        return match ?? throw new ImageException($"{what}: no manifest for linux/{arch} (it has {string.Join(", ", entries.Select(e => $"{e.Os}/{e.Arch}"))})");
    }

    public static string GoArch(Architecture a) => a switch
    {
        Architecture.X64 => "amd64", Architecture.Arm64 => "arm64", Architecture.Arm => "arm", Architecture.X86 => "386",
        _ => a.ToString().ToLowerInvariant(),
    };

    /// <summary>An image manifest: its config and its layers, bottom first.</summary>
    public static ResolvedImage ReadManifest(ReadOnlySpan<byte> json, string digest, string what)
    {
        using var doc = Load(json, what);
        var root = doc.RootElement;
        if (root.TryGetProperty("schemaVersion", out var v) && v.ValueKind == JsonValueKind.Number && v.GetInt32() != 2)
            throw new ImageException($"{what}: schema version {v.GetInt32()} is not supported (only 2: OCI and Docker schema 2)");
        if (!root.TryGetProperty("config", out var config)) throw new ImageException($"{what}: a manifest without a config");
        if (!root.TryGetProperty("layers", out var layers) || layers.ValueKind != JsonValueKind.Array)
            throw new ImageException($"{what}: a manifest without a \"layers\" array");
        var list = layers.EnumerateArray().Select(l => ReadDescriptor(l, what)).ToImmutableArray();
        if (list.Length > 64) throw new ImageException($"{what}: {list.Length} layers; at most 64 are supported");
        return new ResolvedImage(digest, ReadDescriptor(config, what), list);
    }

    /// <summary>The config's defaults and its layers' diff ids (the sha256 of each layer uncompressed), bottom first.</summary>
    public static (ImageConfig Config, ImmutableArray<string> DiffIds) ReadConfig(ReadOnlySpan<byte> json, string what)
    {
        using var doc = Load(json, what);
        var root = doc.RootElement;
        var c = root.TryGetProperty("config", out var cfg) && cfg.ValueKind == JsonValueKind.Object ? cfg : default;
        ImmutableArray<string> Strings(string name) =>
            c.ValueKind == JsonValueKind.Object && c.TryGetProperty(name, out var a) && a.ValueKind == JsonValueKind.Array
                ? [.. a.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)]
                : [];
        var config = new ImageConfig(Strings("Env"), c.ValueKind == JsonValueKind.Object ? Str(c, "WorkingDir") : "",
            c.ValueKind == JsonValueKind.Object ? Str(c, "User") : "", Strings("Entrypoint"), Strings("Cmd"));
        if (!root.TryGetProperty("rootfs", out var rootfs) || !rootfs.TryGetProperty("diff_ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
            throw new ImageException($"{what}: an image config without rootfs.diff_ids");
        var diffIds = ids.EnumerateArray().Select(e => e.GetString() ?? "").ToImmutableArray();
        foreach (var id in diffIds)
            if (!ImageReference.IsDigest(id)) throw new ImageException($"{what}: diff id \"{id}\" is not a sha256 digest");
        return (config, diffIds);
    }

    private static Descriptor ReadDescriptor(JsonElement e, string what)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ImageException($"{what}: a descriptor that is not an object");
        var digest = Str(e, "digest");
        if (!ImageReference.IsDigest(digest)) throw new ImageException($"{what}: \"{digest}\" is not a sha256 digest (only sha256 is supported)");
        var size = e.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt64() : -1;
        return new Descriptor(Str(e, "mediaType"), digest, size);
    }

    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";

    private static JsonDocument Load(ReadOnlySpan<byte> json, string what)
    {
        try { return JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 32 }); }
        catch (JsonException e) { throw new ImageException($"{what}: not valid JSON ({e.Message})"); }
    }
}
