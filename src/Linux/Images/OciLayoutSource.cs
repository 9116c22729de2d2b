namespace Garden.Linux.Images;

/// <summary>An OCI image layout directory (oci-layout, index.json, blobs/sha256/...): the manifest tagged
/// <c>org.opencontainers.image.ref.name</c> = the tag (or the only one, when no tag is asked and there is one).</summary>
public sealed class OciLayoutSource(string dir, string tag, string name) : IImageSource
{
    /// <summary>Largest manifest, index or config read into memory.</summary>
    public const int MaxDocument = 4 << 20;

    public string Name => name;

    public async Task<ResolvedImage> ResolveAsync(CancellationToken ct)
    {
        var indexPath = Path.Combine(dir, "index.json");
        if (!File.Exists(indexPath))
            throw new ImageException($"{name}: {dir} is not an OCI image layout (no index.json)");
        var index = await ReadSmallAsync(indexPath, $"{name}: index.json", ct).ConfigureAwait(false);
        var entries = ImageManifests.ReadIndex(index, $"{name}: index.json");
        var tagged = tag.Length > 0 ? entries.Where(e => e.RefName == tag).ToList()
            : entries.Length == 1 ? [entries[0]] : entries.Where(e => e.RefName == "latest").ToList();
        if (tagged.Count == 0)
        {
            var tags = entries.Select(e => e.RefName).Where(t => t.Length > 0).ToList();
            throw new ImageException(tag.Length > 0
                ? $"{name}: no image tagged \"{tag}\" in {dir} (its tags: {(tags.Count == 0 ? "none" : string.Join(", ", tags))})"
                : $"{name}: {dir} holds {entries.Length} images; name one by its tag (its tags: {string.Join(", ", tags)})");
        }
        var picked = tagged.Count == 1 ? tagged[0].Manifest : ImageManifests.PickPlatform([.. tagged], $"{name}: index.json");
        var bytes = await ReadBlobAsync(picked, ct).ConfigureAwait(false);
        if (ImageManifests.IsIndex(bytes, picked.MediaType))
        {
            picked = ImageManifests.PickPlatform(ImageManifests.ReadIndex(bytes, $"{name}: index {picked.Digest}"), $"{name}: index {picked.Digest}");
            bytes = await ReadBlobAsync(picked, ct).ConfigureAwait(false);
        }
        return ImageManifests.ReadManifest(bytes, picked.Digest, $"{name}: manifest {picked.Digest}");
    }

    private async Task<byte[]> ReadBlobAsync(Descriptor d, CancellationToken ct)
    {
        var bytes = await ReadSmallAsync(BlobPath(d), $"{name}: blob {d.Digest}", ct).ConfigureAwait(false);
        ImageManifests.Verify(bytes, d.Digest, $"{name}: blob {d.Digest}");
        return bytes;
    }

    public Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken ct)
    {
        var path = BlobPath(blob);
        try { return Task.FromResult<Stream>(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true)); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ImageException($"{name}: blob {blob.Digest} is missing from {dir}");
        }
    }

    private string BlobPath(Descriptor d) => Path.Combine(dir, "blobs", "sha256", d.Hex);

    internal static async Task<byte[]> ReadSmallAsync(string path, string what, CancellationToken ct)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new ImageException($"{what} is missing ({path})");
            if (info.Length > MaxDocument) throw new ImageException($"{what} is {info.Length} bytes; at most {MaxDocument} are read");
            return await File.ReadAllBytesAsync(path, ct).ConfigureAwait(false);
        }
        catch (UnauthorizedAccessException e) { throw new ImageException($"{what}: {e.Message}", e); }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
