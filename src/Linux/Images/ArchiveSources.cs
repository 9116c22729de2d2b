using System.Collections.Immutable;
using System.Formats.Tar;
using System.Text.Json;

namespace Garden.Linux.Images;

/// <summary>Unpacks an image archive's files (regular files and directories only, names checked like a layer's) into a
/// scratch directory that goes when the source is disposed.</summary>
internal static class ArchiveFiles
{
    public static async Task ExtractAsync(string archive, string into, string name, CancellationToken ct)
    {
        if (!File.Exists(archive)) throw new ImageException($"{name}: {archive} does not exist or is not a file");
        Directory.CreateDirectory(into);
        try
        {
            await using var file = new FileStream(archive, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
            await using var reader = new TarReader(file);
            while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
            {
                if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.Directory)) continue;
                var (kind, rel) = LayerEntries.Classify(entry.Name);
                if (kind != LayerEntries.Kind.Entry) continue;
                var path = Path.Combine(into, rel);
                if (entry.EntryType == TarEntryType.Directory) { Directory.CreateDirectory(path); continue; }
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await using var output = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                if (entry.DataStream is { } data) await data.CopyToAsync(output, ct).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException)
        {
            throw new ImageException($"{name}: {archive} is not a valid tar archive ({e.Message})", e);
        }
    }

    public static void Remove(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}

/// <summary>oci-archive: an OCI layout in a tar.</summary>
public sealed class OciArchiveSource(string archive, string tag, string scratch, string name) : IImageSource
{
    private OciLayoutSource? _layout;
    public string Name => name;

    public async Task<ResolvedImage> ResolveAsync(CancellationToken ct)
    {
        await ArchiveFiles.ExtractAsync(archive, scratch, name, ct).ConfigureAwait(false);
        _layout = new OciLayoutSource(scratch, tag, name);
        return await _layout.ResolveAsync(ct).ConfigureAwait(false);
    }

    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken ct) =>
        (_layout ?? throw new InvalidOperationException("resolve first")).OpenBlobAsync(blob, ct);

    public ValueTask DisposeAsync()
    {
        ArchiveFiles.Remove(scratch);
        return ValueTask.CompletedTask;
    }
}

/// <summary>docker-archive: what <c>docker save</c> writes (manifest.json naming a config file and layer tars per image).
/// The entry whose RepoTags hold the asked NAME:TAG, or the only one.</summary>
public sealed class DockerArchiveSource(string archive, string tag, string scratch, string name) : IImageSource
{
    private readonly Dictionary<string, string> _files = [];
    public string Name => name;

    public async Task<ResolvedImage> ResolveAsync(CancellationToken ct)
    {
        await ArchiveFiles.ExtractAsync(archive, scratch, name, ct).ConfigureAwait(false);
        var manifest = await OciLayoutSource.ReadSmallAsync(Path.Combine(scratch, "manifest.json"), $"{name}: manifest.json", ct).ConfigureAwait(false);
        JsonElement picked;
        List<(JsonElement Entry, List<string> Tags)> entries;
        try
        {
            using var doc = JsonDocument.Parse(manifest);
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new ImageException($"{name}: manifest.json is not an array");
            entries = [.. doc.RootElement.EnumerateArray().Select(e => (e.Clone(),
                e.TryGetProperty("RepoTags", out var t) && t.ValueKind == JsonValueKind.Array
                    ? t.EnumerateArray().Select(x => x.GetString() ?? "").ToList() : []))];
        }
        catch (JsonException e) { throw new ImageException($"{name}: manifest.json is not valid JSON ({e.Message})"); }
        var matching = tag.Length == 0 ? entries : entries.Where(e => e.Tags.Any(t => t == tag || t.EndsWith("/" + tag, StringComparison.Ordinal))).ToList();
        if (matching.Count != 1)
            throw new ImageException(tag.Length > 0 && matching.Count == 0
                ? $"{name}: no image tagged \"{tag}\" in {archive} (its tags: {string.Join(", ", entries.SelectMany(e => e.Tags))})"
                : $"{name}: {archive} holds {entries.Count} images; name one (docker-archive:///file.tar:NAME:TAG)");
        picked = matching[0].Entry;
        var config = await Describe(picked.TryGetProperty("Config", out var c) ? c.GetString() ?? "" : "", "application/vnd.docker.container.image.v1+json", ct).ConfigureAwait(false);
        var layers = ImmutableArray.CreateBuilder<Descriptor>();
        if (!picked.TryGetProperty("Layers", out var ls) || ls.ValueKind != JsonValueKind.Array) throw new ImageException($"{name}: manifest.json names no Layers");
        foreach (var l in ls.EnumerateArray())
            layers.Add(await Describe(l.GetString() ?? "", "application/vnd.docker.image.rootfs.diff.tar", ct).ConfigureAwait(false));
        return new ResolvedImage(config.Digest, config, layers.ToImmutable());
    }

    /// <summary>A file of the archive as a blob: its digest is its sha256 (docker save names files, not digests).</summary>
    private async Task<Descriptor> Describe(string rel, string mediaType, CancellationToken ct)
    {
        var (kind, clean) = LayerEntries.Classify(rel);
        var path = Path.Combine(scratch, clean);
        if (kind != LayerEntries.Kind.Entry || !File.Exists(path) || new FileInfo(path).LinkTarget is not null)
            throw new ImageException($"{name}: manifest.json names \"{rel}\", which is not a file of the archive");
        await using var file = File.OpenRead(path);
        var digest = "sha256:" + Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(file, ct).ConfigureAwait(false));
        _files[digest] = path;
        return new Descriptor(mediaType, digest, file.Length);
    }

    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken ct) =>
        _files.TryGetValue(blob.Digest, out var path)
            ? Task.FromResult<Stream>(File.OpenRead(path))
            : throw new ImageException($"{name}: blob {blob.Digest} is not in the archive");

    public ValueTask DisposeAsync()
    {
        ArchiveFiles.Remove(scratch);
        return ValueTask.CompletedTask;
    }
}
