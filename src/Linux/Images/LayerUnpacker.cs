using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Garden.Linux.IO;
using Garden.Linux.Interop;

namespace Garden.Linux.Images;

/// <summary>Unpacks one layer blob into an empty directory of its own (an overlay lower dir): checks the blob's digest
/// and its diff id (the sha256 of the tar) as it reads, keeps owners, modes and times, turns OCI whiteouts into
/// overlayfs ones (a 0/0 character device; <c>trusted.overlay.opaque=y</c> on an opaque directory), and refuses any entry
/// that would leave the directory: an absolute name, a <c>..</c>, a parent that is a symlink or not a directory, a hard
/// link to something that is not a file of this layer. Device nodes and fifos are skipped (runc makes /dev).</summary>
public static class LayerUnpacker
{
    /// <summary>Unpacks <paramref name="blob"/> into <paramref name="root"/> (which must exist and be empty). Returns the
    /// bytes the layer takes. Throws an <see cref="ImageException"/> when the blob is not what its digests say or an entry
    /// is refused; what was unpacked so far is the caller's to remove.</summary>
    /// <param name="below">the image's layers under this one, top first: a directory this layer's tar does not name but
    /// needs (the parent of a file it adds) gets the owner and mode it has there, as it would in a unpack over them.</param>
    public static async Task<long> UnpackAsync(Stream blob, Descriptor layer, string diffId, string root, CancellationToken ct,
        IReadOnlyList<string>? below = null)
    {
        var ctx = new Context(root, below ?? []);
        var what = $"layer {layer.Digest}";
        if (layer.MediaType.Contains("zstd", StringComparison.Ordinal))
            throw new ImageException($"{what}: zstd-compressed layers are not supported ({layer.MediaType})");
        await using var compressed = new HashingStream(blob);
        var head = new byte[2];
        var got = await compressed.ReadAtLeastAsync(head, 2, throwOnEndOfStream: false, ct).ConfigureAwait(false);
        Stream tarStream = new PrefixStream(head.AsMemory(0, got), compressed);
        var gzip = got == 2 && head[0] == 0x1f && head[1] == 0x8b;
        if (gzip) tarStream = new GZipStream(tarStream, CompressionMode.Decompress);
        await using var uncompressed = new HashingStream(tarStream);
        long bytes = 0;
        try
        {
            await using var reader = new TarReader(uncompressed, leaveOpen: true);
            while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
                bytes += await ApplyAsync(ctx, entry, ct).ConfigureAwait(false);
            // the rest (the tar's zero blocks, gzip's trailer) counts in both digests
            await uncompressed.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
            await compressed.CopyToAsync(Stream.Null, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or ImageException
                                      or IOException or ArgumentException or UnauthorizedAccessException)
        {
            // a blob whose bytes are not the ones its digest names can fail anywhere in the tar (a garbled header, a
            // name no file system takes): that is what to say, not the symptom; read the rest of it to know
            if (await IsNotTheBlob(compressed, layer, ct).ConfigureAwait(false) is { } mismatch)
                throw new ImageException($"{what}: {mismatch}", e);
            if (e is ImageException) throw new ImageException($"{what}: {e.Message}", e);
            if (e is IOException and not EndOfStreamException && compressed.Broken) throw;   // the transfer broke off
            if (e is IOException and not EndOfStreamException or UnauthorizedAccessException) throw new ImageException($"{what}: {e.Message}", e);
            throw new ImageException($"{what}: not a valid {(gzip ? "gzip-compressed " : "")}tar ({e.Message})", e);
        }
        if (Mismatch(compressed, layer) is { } wrong) throw new ImageException($"{what}: {wrong}");
        if (uncompressed.Digest != diffId)
            throw new ImageException($"{what}: diff id mismatch: the image config says {diffId}, the unpacked tar hashes to {uncompressed.Digest}");
        return bytes;
    }

    private static string? Mismatch(HashingStream blob, Descriptor layer) =>
        layer.Size >= 0 && blob.Length != layer.Size ? $"size mismatch: the manifest says {layer.Size} bytes, the blob has {blob.Length}"
        : blob.Digest != layer.Digest ? $"digest mismatch: the content hashes to {blob.Digest}"
        : null;

    /// <summary>Reads what is left of the blob (no further than one byte past the size its manifest gives) and says how
    /// it is not the blob its descriptor names; null when it is, or when the rest cannot be read (the transfer broke off:
    /// the caller's error stands).</summary>
    private static async Task<string?> IsNotTheBlob(HashingStream blob, Descriptor layer, CancellationToken ct)
    {
        if (blob.Broken) return null;
        var buffer = new byte[64 * 1024];
        try
        {
            while (layer.Size < 0 || blob.Length <= layer.Size)
            {
                var want = layer.Size < 0 ? buffer.Length : (int)Math.Min(buffer.Length, layer.Size + 1 - blob.Length);
                if (await blob.ReadAsync(buffer.AsMemory(0, want), ct).ConfigureAwait(false) == 0) break;
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException) { return null; }
        return Mismatch(blob, layer);
    }

    private static async Task<long> ApplyAsync(Context ctx, TarEntry entry, CancellationToken ct)
    {
        var root = ctx.Root;
        var (kind, rel) = LayerEntries.Classify(entry.Name);
        var what = $"layer entry \"{entry.Name}\"";
        switch (kind)
        {
            case LayerEntries.Kind.Skip:
                return 0;
            case LayerEntries.Kind.Opaque:
            {
                if (rel.Length > 0) EnsureParents(ctx, rel, what);
                if (rel.Length > 0 && !IsRealDirectory(Path.Combine(root, rel))) MakeDirectory(Path.Combine(root, rel), what);
                Sys.Lsetxattr(rel.Length == 0 ? root : Path.Combine(root, rel), "trusted.overlay.opaque", "y"u8);
                return 0;
            }
            case LayerEntries.Kind.Whiteout:
            {
                EnsureParents(ctx, rel, what);
                var path = Path.Combine(root, rel);
                RemoveExisting(path);
                Sys.MknodWhiteout(path);
                return 0;
            }
        }
        var target = Path.Combine(root, rel);
        EnsureParents(ctx, rel, what);
        var uid = (uint)entry.Uid;
        var gid = (uint)entry.Gid;
        switch (entry.EntryType)
        {
            case TarEntryType.Directory:
                if (!IsRealDirectory(target))
                {
                    RemoveExisting(target);
                    MakeDirectory(target, what);
                }
                Sys.Lchown(target, uid, gid);
                File.SetUnixFileMode(target, entry.Mode);
                return 4096;
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
            {
                RemoveExisting(target);
                await using (var file = new FileStream(target, new FileStreamOptions
                       { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
                    if (entry.DataStream is { } data) await data.CopyToAsync(file, ct).ConfigureAwait(false);
                Sys.Lchown(target, uid, gid);
                File.SetUnixFileMode(target, entry.Mode);     // after chown, which clears setuid bits
                File.SetLastWriteTimeUtc(target, entry.ModificationTime.UtcDateTime);
                return Math.Max(entry.Length, 0) + 512;
            }
            case TarEntryType.SymbolicLink:
                if (entry.LinkName.Length == 0 || entry.LinkName.Contains('\0')) throw new ImageException($"{what}: a symlink to nothing");
                RemoveExisting(target);
                File.CreateSymbolicLink(target, entry.LinkName);   // its target is read in the container, never here
                Sys.Lchown(target, uid, gid);
                return 512;
            case TarEntryType.HardLink:
            {
                var linked = LayerEntries.LinkTarget(entry.Name, entry.LinkName);
                EnsureParents(ctx, linked, what, create: false);
                var source = Path.Combine(root, linked);
                var info = new FileInfo(source);
                if (info.LinkTarget is not null || !info.Exists)
                    throw new ImageException($"{what}: hard link to \"{entry.LinkName}\", which is not a file of this layer");
                RemoveExisting(target);
                Sys.Link(source, target);
                return 0;
            }
            default:
                return 0;   // character and block devices, fifos: not from an image
        }
    }

    /// <summary>Makes sure every parent of <paramref name="rel"/> is a real directory inside <paramref name="root"/>
    /// (made 0755 root-owned when missing, as the tar names it later). A symlink or a file on the way is refused.</summary>
    private sealed record Context(string Root, IReadOnlyList<string> Below);

    private static string EnsureParents(Context ctx, string rel, string what, bool create = true)
    {
        var dir = ctx.Root;
        var parts = rel.Split('/');
        for (var i = 0; i < parts.Length - 1; i++)
        {
            dir = Path.Combine(dir, parts[i]);
            var info = new DirectoryInfo(dir);
            if (info.LinkTarget is not null)
                throw new ImageException($"{what}: its parent \"{string.Join('/', parts.Take(i + 1))}\" is a symlink (a layer must not write through one)");
            if (info.Exists) continue;
            if (File.Exists(dir)) throw new ImageException($"{what}: its parent \"{string.Join('/', parts.Take(i + 1))}\" is not a directory");
            if (!create) throw new ImageException($"{what}: \"{string.Join('/', parts.Take(i + 1))}\" does not exist in this layer");
            MakeDirectory(dir, what);
            if (AsBelow(ctx.Below, parts.Take(i + 1).ToArray()) is { } was)
            {
                Sys.Lchown(dir, was.Uid, was.Gid);
                File.SetUnixFileMode(dir, (UnixFileMode)(was.Mode & 0xFFF));
            }
        }
        return dir;
    }

    /// <summary>The owner and mode of the directory <paramref name="parts"/> in the topmost layer below that has it as a
    /// real directory (every step a directory, no symlink followed), or null.</summary>
    private static (uint Uid, uint Gid, uint Mode)? AsBelow(IReadOnlyList<string> below, string[] parts)
    {
        foreach (var layer in below)
        {
            (uint Uid, uint Gid, uint Mode)? found = null;
            var path = layer;
            foreach (var part in parts)
            {
                path = Path.Combine(path, part);
                found = Sys.LstatOwner(path);
                if (found is not { } f || (f.Mode & Sys.S_IFMT) != Sys.S_IFDIR) { found = null; break; }
            }
            if (found is not null) return found;
        }
        return null;
    }

    private static bool IsRealDirectory(string path)
    {
        var info = new DirectoryInfo(path);
        return info.LinkTarget is null && info.Exists;
    }

    private static void MakeDirectory(string path, string what)
    {
        try
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
        catch (IOException e) { throw new ImageException($"{what}: cannot make {path}: {e.Message}", e); }
    }

    /// <summary>Removes what an earlier entry of the same layer put at <paramref name="path"/> (never following a symlink).</summary>
    private static void RemoveExisting(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null || info.Exists) { info.Delete(); return; }
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
    }
}

/// <summary>A read-only stream that hashes (sha256) and counts what is read through it.</summary>
internal sealed class HashingStream(Stream inner) : ReadOnlyStream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private long _read;
    private string? _digest;

    public string Digest => _digest ??= "sha256:" + Convert.ToHexStringLower(_hash.GetHashAndReset());
    public override long Length => _read;
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>A read of the stream under it threw (the transfer broke off): what was read is all there is.</summary>
    public bool Broken { get; private set; }

    public override int Read(Span<byte> buffer)
    {
        int n;
        try { n = inner.Read(buffer); }
        catch { Broken = true; throw; }
        _hash.AppendData(buffer[..n]);
        _read += n;
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        int n;
        try { n = await inner.ReadAsync(buffer, ct).ConfigureAwait(false); }
        catch { Broken = true; throw; }
        _hash.AppendData(buffer.Span[..n]);
        _read += n;
        return n;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { inner.Dispose(); _hash.Dispose(); }
        base.Dispose(disposing);
    }
}

/// <summary>Bytes already read (a peek at the head), then the rest of the stream.</summary>
internal sealed class PrefixStream(ReadOnlyMemory<byte> prefix, Stream rest) : ReadOnlyStream
{
    private ReadOnlyMemory<byte> _prefix = prefix;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_prefix.IsEmpty) return rest.Read(buffer);
        var n = Math.Min(buffer.Length, _prefix.Length);
        _prefix.Span[..n].CopyTo(buffer);
        _prefix = _prefix[n..];
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        if (_prefix.IsEmpty) return rest.ReadAsync(buffer, ct);
        return ValueTask.FromResult(Read(buffer.Span));
    }
}
