using System.Text.RegularExpressions;

namespace Garden.Linux.Images;

public enum ImageKind { Directory, Registry, OciLayout, OciArchive, DockerArchive }

/// <summary>Where a container's root comes from, as a Create names it: a plain directory (an absolute path, as before
/// images), <c>docker://HOST[:PORT]/NAME[:TAG|@DIGEST]</c> (a registry, Registry HTTP API v2),
/// <c>oci:///path/to/layout[:TAG]</c> (an OCI image layout), <c>oci-archive:///file.tar[:TAG]</c> (one as a tar) or
/// <c>docker-archive:///file.tar[:NAME:TAG]</c> (what <c>docker save</c> writes). Pure: <see cref="Parse"/> only reads the text.</summary>
public sealed partial record ImageReference(ImageKind Kind, string Path, string Host = "", string Name = "", string Tag = "", string Digest = "")
{
    public const string RegistryScheme = "docker://", OciScheme = "oci://", OciArchiveScheme = "oci-archive://",
        DockerArchiveScheme = "docker-archive://";

    /// <summary>True when <paramref name="rootfs"/> names an image to fetch (a scheme), not a directory.</summary>
    public static bool IsImage(string rootfs) => rootfs.Contains("://", StringComparison.Ordinal);

    public bool IsDirectory => Kind == ImageKind.Directory;

    /// <summary>Tag or digest as the registry takes it in /v2/NAME/manifests/REF.</summary>
    public string ManifestReference => Digest.Length > 0 ? Digest : Tag;

    /// <summary>The host's base URL: plain HTTP when <paramref name="insecure"/> names the host (with or without its port).</summary>
    public Uri RegistryBase(IReadOnlyCollection<string> insecure)
    {
        var hostOnly = Host.StartsWith('[') ? Host[..(Host.IndexOf(']') + 1)] : Host.Split(':')[0];
        var plain = insecure.Contains(Host) || insecure.Contains(hostOnly);
        return new Uri($"{(plain ? "http" : "https")}://{Host}/");
    }

    public override string ToString() => Kind switch
    {
        ImageKind.Directory => Path,
        ImageKind.Registry => $"{RegistryScheme}{Host}/{Name}{(Digest.Length > 0 ? "@" + Digest : ":" + Tag)}",
        ImageKind.OciLayout => $"{OciScheme}{Path}{(Tag.Length > 0 ? ":" + Tag : "")}",
        ImageKind.OciArchive => $"{OciArchiveScheme}{Path}{(Tag.Length > 0 ? ":" + Tag : "")}",
        _ => $"{DockerArchiveScheme}{Path}{(Tag.Length > 0 ? ":" + Tag : "")}",
    };

    /// <summary>Parses <paramref name="text"/>; a bad one is an <see cref="ImageException"/> saying what is wrong with it.</summary>
    public static ImageReference Parse(string text)
    {
        if (text.Length > 4096) throw Bad(text[..64] + "...", "is longer than 4096 characters");
        if (text.Contains('\0') || text.Any(char.IsControl)) throw Bad(text, "contains a control character");
        if (!IsImage(text))
        {
            if (!text.StartsWith('/')) throw Bad(text, "is neither an absolute directory path nor docker://, oci://, oci-archive:// or docker-archive://");
            return new ImageReference(ImageKind.Directory, text);
        }
        if (text.StartsWith(RegistryScheme, StringComparison.Ordinal)) return ParseRegistry(text, text[RegistryScheme.Length..]);
        foreach (var (scheme, kind) in new[] { (OciScheme, ImageKind.OciLayout), (OciArchiveScheme, ImageKind.OciArchive), (DockerArchiveScheme, ImageKind.DockerArchive) })
        {
            if (!text.StartsWith(scheme, StringComparison.Ordinal)) continue;
            var rest = text[scheme.Length..];
            if (!rest.StartsWith('/')) throw Bad(text, $"{scheme} must be followed by an absolute path ({scheme}/path)");
            var (path, tag) = SplitTag(rest);
            if (path.Split('/').Any(c => c is ".." or ".")) throw Bad(text, "the path must not contain . or .. components");
            if (tag.Length > 0 && kind != ImageKind.DockerArchive && !TagRegex().IsMatch(tag)) throw Bad(text, $"\"{tag}\" is not a valid tag");
            return new ImageReference(kind, path.Length > 1 ? path.TrimEnd('/') : path, Tag: tag);
        }
        throw Bad(text, $"has an unknown scheme \"{text[..text.IndexOf("://", StringComparison.Ordinal)]}\" (known: docker, oci, oci-archive, docker-archive)");
    }

    private static (string Path, string Tag) SplitTag(string rest)
    {
        // as skopeo reads them: the path ends at the first colon (docker-archive's NAME:TAG has slashes and a colon of its own)
        var colon = rest.IndexOf(':');
        return colon < 0 ? (rest, "") : (rest[..colon], rest[(colon + 1)..]);
    }

    /// <summary>docker:///NAME (Garden's and Docker's way to name Docker Hub): its registry, with library/ for a bare name.</summary>
    public const string DockerHub = "registry-1.docker.io";

    private static ImageReference ParseRegistry(string text, string rest)
    {
        if (rest.StartsWith('/') && rest.Length > 1)
        {
            var hubName = rest[1..];
            var end = hubName.IndexOfAny([':', '@']);
            var repository = end < 0 ? hubName : hubName[..end];
            rest = DockerHub + "/" + (repository.Contains('/') ? hubName : "library/" + hubName);
        }
        var slash = rest.IndexOf('/');
        if (slash <= 0) throw Bad(text, "names no host: docker://HOST[:PORT]/NAME[:TAG|@DIGEST]");
        var host = rest[..slash];
        if (!HostRegex().IsMatch(host)) throw Bad(text, $"\"{host}\" is not a valid registry host[:port]");
        var nameRef = rest[(slash + 1)..];
        string name, tag = "", digest = "";
        var at = nameRef.IndexOf('@');
        if (at >= 0)
        {
            name = nameRef[..at];
            digest = nameRef[(at + 1)..];
            if (!DigestRegex().IsMatch(digest)) throw Bad(text, $"\"{digest}\" is not a sha256 digest (sha256: and 64 lowercase hex digits)");
        }
        else
        {
            var colon = nameRef.IndexOf(':', nameRef.LastIndexOf('/') + 1);
            (name, tag) = colon < 0 ? (nameRef, "latest") : (nameRef[..colon], nameRef[(colon + 1)..]);
            if (!TagRegex().IsMatch(tag)) throw Bad(text, $"\"{tag}\" is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})");
        }
        if (!NameRegex().IsMatch(name)) throw Bad(text, $"\"{name}\" is not a valid repository name (lowercase letters, digits, and . _ - / between them)");
        return new ImageReference(ImageKind.Registry, "", host, name, tag, digest);
    }

    private static ImageException Bad(string text, string why) => new($"image reference \"{text}\" {why}");

    public static bool IsDigest(string s) => DigestRegex().IsMatch(s);

    [GeneratedRegex(@"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\z")]
    private static partial Regex TagRegex();

    [GeneratedRegex(@"\Asha256:[a-f0-9]{64}\z")]
    private static partial Regex DigestRegex();

    [GeneratedRegex(@"\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\z")]
    private static partial Regex NameRegex();

    [GeneratedRegex(@"\A(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\z")]
    private static partial Regex HostRegex();
}

/// <summary>An image could not be had: a bad reference, a missing tag, a registry error, a corrupt or mismatched blob,
/// a layer that tries to escape. The message names what and where.</summary>
public sealed class ImageException(string message, Exception? inner = null) : Exception(message, inner);
