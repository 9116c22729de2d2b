using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Text.Json;

namespace Garden.Linux.Images;

/// <summary>An image as a container gets it: its layers' directories (bottom first), its config, its size.</summary>
public sealed record PulledImage(string Reference, string ManifestDigest, ImmutableArray<string> LayerDirs, ImageConfig Config, ulong Bytes);

/// <summary>Images for containers: pulls one for a container (each layer unpacked once, shared read-only) and lets it go
/// when the container is destroyed.</summary>
public interface IImageStore
{
    /// <summary>Pulls <paramref name="reference"/> for <paramref name="handle"/>; its layers are kept while the handle holds them.</summary>
    Task<PulledImage> PullAsync(string handle, ImageReference reference, CancellationToken ct);

    /// <summary>The handle no longer holds its image (nothing held counts as done); unused layers beyond the store's
    /// size limit are removed.</summary>
    Task ReleaseAsync(string handle, CancellationToken ct);

    /// <summary>The bytes of the image <paramref name="handle"/> holds (0 when none).</summary>
    ulong BytesOf(string handle);
}

/// <summary>The layer store under the state dir: <c>layers/HEX/fs</c> is the layer with diff id sha256:HEX unpacked (with
/// <c>layers/HEX/size</c>, whose mtime is its last use), <c>refs/HANDLE.json</c> the layers a container holds, <c>tmp/</c>
/// where pulls unpack and removals go. The file system is the journal: a layer is unpacked into tmp/, verified (blob digest
/// and diff id), then renamed into layers/ — so layers/ only ever holds whole, verified layers; a container's ref is written
/// (write, fsync, rename) once every layer it names is in place and before its root is mounted, and removed after its root
/// is gone. After a crash, <see cref="RemoveLeftovers"/> empties tmp/ (half pulls, half removals). One download per layer
/// however many pulls want it at once; layers no ref holds and no pull in progress wants are removed, least recently used
/// first, while the store is above <c>maxBytes</c>.</summary>
public sealed class LayerStore : IImageStore
{
    private readonly string _root;
    private readonly ulong _maxBytes;
    private readonly IImageSources _sources;
    private readonly ConcurrentDictionary<string, Lazy<Task>> _unpacking = new();
    private readonly Dictionary<string, int> _pinned = [];
    private readonly SemaphoreSlim _lock = new(1, 1);

    private readonly Func<string, bool> _live;

    /// <param name="live">whether a handle's container still exists (its depot: made before its pull, removed after its
    /// release). A ref of a handle that does not (a crash between a destroy's release and its end) holds nothing.</param>
    public LayerStore(string root, ulong maxBytes, IImageSources sources, Func<string, bool>? live = null)
    {
        _live = live ?? (_ => true);
        _root = Path.GetFullPath(root);
        _maxBytes = maxBytes;
        _sources = sources;
        foreach (var dir in new[] { _root, Layers, Refs, Tmp })
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);   // root's only
        }
    }

    private string Layers => Path.Combine(_root, "layers");
    private string Refs => Path.Combine(_root, "refs");
    private string Tmp => Path.Combine(_root, "tmp");

    public string LayerDir(string diffId) => Path.Combine(Layers, diffId[7..], "fs");

    /// <summary>At start, before any pull: what a crash left in tmp/ (a half-unpacked layer, a half-removed one) goes.</summary>
    public IReadOnlyList<string> RemoveLeftovers()
    {
        var removed = new List<string>();
        foreach (var entry in Directory.EnumerateFiles(Refs, "*.tmp").Concat(Directory.EnumerateFileSystemEntries(Tmp)))
        {
            Delete(entry);
            removed.Add(entry);
        }
        return removed;
    }

    public async Task<PulledImage> PullAsync(string handle, ImageReference reference, CancellationToken ct)
    {
        var scratch = Path.Combine(Tmp, "src-" + Guid.NewGuid().ToString("N"));
        await using var source = _sources.Open(reference, scratch);
        var image = await source.ResolveAsync(ct).ConfigureAwait(false);
        var configBytes = await ReadConfigAsync(source, image.Config, ct).ConfigureAwait(false);
        var (config, diffIds) = ImageManifests.ReadConfig(configBytes, $"{source.Name}: config {image.Config.Digest}");
        if (diffIds.Length != image.Layers.Length)
            throw new ImageException($"{source.Name}: the manifest has {image.Layers.Length} layers, its config {diffIds.Length} diff ids");
        var keys = diffIds.Select(d => d[7..]).ToList();
        Pin(keys, +1);
        try
        {
            for (var i = 0; i < keys.Count; i++)
                await EnsureLayerAsync(source, image.Layers[i], diffIds[i], [.. diffIds.Take(i).Reverse().Select(LayerDir)], ct).ConfigureAwait(false);
            ulong bytes = 0;
            foreach (var key in keys)
            {
                var size = Path.Combine(Layers, key, "size");
                bytes += ulong.TryParse(await File.ReadAllTextAsync(size, ct).ConfigureAwait(false), out var b) ? b : 0;
                File.SetLastWriteTimeUtc(size, DateTime.UtcNow);
            }
            await WriteRefAsync(handle, new Ref(reference.ToString(), image.ManifestDigest, keys, bytes)).ConfigureAwait(false);
            return new PulledImage(reference.ToString(), image.ManifestDigest, [.. diffIds.Select(LayerDir)], config, bytes);
        }
        finally
        {
            Pin(keys, -1);
            await CollectAsync().ConfigureAwait(false);
        }
    }

    private static async Task<byte[]> ReadConfigAsync(IImageSource source, Descriptor config, CancellationToken ct)
    {
        if (config.Size > OciLayoutSource.MaxDocument) throw new ImageException($"{source.Name}: config of {config.Size} bytes");
        await using var s = await source.OpenBlobAsync(config, ct).ConfigureAwait(false);
        var buffer = new MemoryStream();
        await s.CopyToAsync(buffer, ct).ConfigureAwait(false);
        var bytes = buffer.ToArray();
        ImageManifests.Verify(bytes, config.Digest, $"{source.Name}: config {config.Digest}");
        return bytes;
    }

    /// <summary>The layer in layers/ (unpacked by this call, or by a pull already at it: each layer is downloaded once).</summary>
    private async Task EnsureLayerAsync(IImageSource source, Descriptor layer, string diffId, IReadOnlyList<string> below, CancellationToken ct)
    {
        var key = diffId[7..];
        if (Directory.Exists(Path.Combine(Layers, key))) return;
        var lazy = _unpacking.GetOrAdd(key, _ => new Lazy<Task>(() => UnpackAsync(source, layer, diffId, key, below)));
        try { await lazy.Value.WaitAsync(ct).ConfigureAwait(false); }
        finally { _unpacking.TryRemove(new KeyValuePair<string, Lazy<Task>>(key, lazy)); }
    }

    private async Task UnpackAsync(IImageSource source, Descriptor layer, string diffId, string key, IReadOnlyList<string> below)
    {
        // a pull that looked before another's rename and asks after it finished: the layer is there now
        if (Directory.Exists(Path.Combine(Layers, key))) return;
        var tmp = Path.Combine(Tmp, $"layer-{key[..12]}-{Guid.NewGuid():N}");
        var fs = Path.Combine(tmp, "fs");
        Directory.CreateDirectory(fs, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        try
        {
            long bytes;
            await using (var blob = await source.OpenBlobAsync(layer, CancellationToken.None).ConfigureAwait(false))
            {
                try { bytes = await LayerUnpacker.UnpackAsync(blob, layer, diffId, fs, CancellationToken.None, below).ConfigureAwait(false); }
                catch (Exception e) when (e is IOException or HttpRequestException)
                {
                    throw new ImageException($"{source.Name}: layer {layer.Digest}: the transfer broke off: {e.Message}", e);
                }
                catch (ImageException e) when (!e.Message.StartsWith(source.Name, StringComparison.Ordinal))
                {
                    throw new ImageException($"{source.Name}: {e.Message}", e);
                }
            }
            await File.WriteAllTextAsync(Path.Combine(tmp, "size"), bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)).ConfigureAwait(false);
            var final = Path.Combine(Layers, key);
            try { Directory.Move(tmp, final); }
            catch (IOException) when (Directory.Exists(final)) { Delete(tmp); }   // another gardend's pull got there first
        }
        catch
        {
            Delete(tmp);
            throw;
        }
    }

    private void Pin(IEnumerable<string> keys, int by)
    {
        lock (_pinned)
            foreach (var key in keys)
            {
                var n = _pinned.GetValueOrDefault(key) + by;
                if (n <= 0) _pinned.Remove(key); else _pinned[key] = n;
            }
    }

    public async Task ReleaseAsync(string handle, CancellationToken ct)
    {
        var path = RefPath(handle);
        if (!File.Exists(path)) return;
        File.Delete(path);
        await CollectAsync().ConfigureAwait(false);
    }

    public ulong BytesOf(string handle) => ReadRef(RefPath(handle))?.Bytes ?? 0;

    /// <summary>Removes layers no ref holds and no pull wants, least recently used first, while above the limit.</summary>
    public async Task CollectAsync()
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var held = new HashSet<string>();
            foreach (var file in Directory.EnumerateFiles(Refs, "*.json"))
            {
                if (!_live(Path.GetFileNameWithoutExtension(file))) { File.Delete(file); continue; }
                if (ReadRef(file) is { } r) held.UnionWith(r.Layers);
            }
            lock (_pinned) held.UnionWith(_pinned.Keys);
            var layers = Directory.EnumerateDirectories(Layers).Select(d =>
            {
                var size = new FileInfo(Path.Combine(d, "size"));
                var bytes = size.Exists && ulong.TryParse(File.ReadAllText(size.FullName), out var b) ? b : 0;
                return (Dir: d, Key: Path.GetFileName(d), Bytes: bytes, Used: size.Exists ? size.LastWriteTimeUtc : DateTime.MinValue);
            }).ToList();
            var total = layers.Aggregate(0UL, (sum, l) => sum + l.Bytes);
            foreach (var l in layers.Where(l => !held.Contains(l.Key)).OrderBy(l => l.Used))
            {
                if (total <= _maxBytes) break;
                // out of layers/ in one rename first: a crash mid-removal leaves a whole layer or a leftover in tmp/
                var gone = Path.Combine(Tmp, $"gc-{l.Key[..12]}-{Guid.NewGuid():N}");
                Directory.Move(l.Dir, gone);
                Delete(gone);
                total -= l.Bytes;
            }
        }
        finally { _lock.Release(); }
    }

    /// <summary>The layers (their keys) in the store.</summary>
    public IReadOnlyList<string> LayerKeys() => [.. Directory.EnumerateDirectories(Layers).Select(Path.GetFileName)!];

    private sealed record Ref(string Reference, string ManifestDigest, List<string> Layers, ulong Bytes);

    private string RefPath(string handle)
    {
        if (handle.Length == 0 || handle.Contains('/') || handle.StartsWith('.')) throw new ArgumentException($"bad handle \"{handle}\"");
        return Path.Combine(Refs, handle + ".json");
    }

    private async Task WriteRefAsync(string handle, Ref r)
    {
        var path = RefPath(handle);
        var tmp = path + ".tmp";
        await using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            await JsonSerializer.SerializeAsync(f, new Dictionary<string, object>
            {
                ["reference"] = r.Reference, ["manifest"] = r.ManifestDigest, ["layers"] = r.Layers, ["bytes"] = r.Bytes,
            }).ConfigureAwait(false);
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static Ref? ReadRef(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var e = doc.RootElement;
            return new Ref(e.GetProperty("reference").GetString() ?? "", e.GetProperty("manifest").GetString() ?? "",
                [.. e.GetProperty("layers").EnumerateArray().Select(x => x.GetString() ?? "")], e.GetProperty("bytes").GetUInt64());
        }
        catch (Exception ex) when (ex is IOException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private static void Delete(string path)
    {
        try
        {
            if (Directory.Exists(path) && new DirectoryInfo(path).LinkTarget is null) Directory.Delete(path, recursive: true);
            else File.Delete(path);
        }
        catch (DirectoryNotFoundException) { }
    }
}

/// <summary>The sources the references name: registries over one HttpClient, layouts and archives on disk.</summary>
public sealed class ImageSources(HttpClient http, IReadOnlyCollection<string> insecure, TimeSpan? stall = null) : IImageSources
{
    /// <summary>How long a registry may send nothing (garden.registry.stall-timeout).</summary>
    public TimeSpan Stall { get; } = stall ?? TimeSpan.FromSeconds(60);

    public IImageSource Open(ImageReference reference, string scratch) => reference.Kind switch
    {
        ImageKind.Registry => new RegistrySource(reference, http, insecure, Stall),
        ImageKind.OciLayout => new OciLayoutSource(reference.Path, reference.Tag, reference.ToString()),
        ImageKind.OciArchive => new OciArchiveSource(reference.Path, reference.Tag, scratch, reference.ToString()),
        ImageKind.DockerArchive => new DockerArchiveSource(reference.Path, reference.Tag, scratch, reference.ToString()),
        _ => throw new ImageException($"{reference} is a directory, not an image"),
    };

    /// <summary>The client registries are fetched with (a connect timeout; no overall one: layers may be large).</summary>
    public static HttpClient Client() => new(new SocketsHttpHandler
    {
        ConnectTimeout = TimeSpan.FromSeconds(30),
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
    })
    { Timeout = System.Threading.Timeout.InfiniteTimeSpan, DefaultRequestHeaders = { { "User-Agent", "garden-actors" } } };
}
