namespace Garden.Linux.Images;

/// <summary>Where an image's manifest and blobs come from: a registry, an OCI layout, an archive.</summary>
public interface IImageSource : IAsyncDisposable
{
    /// <summary>The reference, for messages.</summary>
    string Name { get; }

    /// <summary>The manifest for this machine's platform (an index is resolved), with its config and layers.</summary>
    Task<ResolvedImage> ResolveAsync(CancellationToken ct);

    /// <summary>A blob's content as it is stored (the caller verifies its digest as it reads).</summary>
    Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken ct);
}

/// <summary>Opens the source an image reference names (the composition root gives the store one).</summary>
public interface IImageSources
{
    /// <summary>The source of <paramref name="reference"/>; an archive is unpacked under <paramref name="scratch"/> (the
    /// caller's temp dir, removed with the source).</summary>
    IImageSource Open(ImageReference reference, string scratch);
}
