namespace Garden.Linux.Images;

/// <summary>What a layer's tar entry name means (OCI image spec, layer.md). Pure.</summary>
public static class LayerEntries
{
    public enum Kind
    {
        /// <summary>A file, directory, link ... at <c>Path</c>.</summary>
        Entry,
        /// <summary><c>.wh.NAME</c>: NAME of the layers below is deleted.</summary>
        Whiteout,
        /// <summary><c>.wh..wh..opq</c>: nothing of the layers below shows in this directory.</summary>
        Opaque,
        /// <summary>Nothing to make (the layer's root itself, or an aufs metadata entry <c>.wh..wh.*</c>).</summary>
        Skip,
    }

    public const string WhiteoutPrefix = ".wh.", OpaqueMarker = ".wh..wh..opq";

    /// <summary>The entry's meaning and the relative path it acts on ("a/b"; for an opaque marker, its directory). A name
    /// that leaves the layer (absolute, or with a .. component) is an <see cref="ImageException"/>.</summary>
    public static (Kind Kind, string Path) Classify(string name)
    {
        var parts = Normalize(name);
        if (parts.Count == 0) return (Kind.Skip, "");
        var last = parts[^1];
        var parent = string.Join('/', parts.Take(parts.Count - 1));
        if (last == OpaqueMarker) return (Kind.Opaque, parent);
        if (last.StartsWith(WhiteoutPrefix + WhiteoutPrefix, StringComparison.Ordinal)) return (Kind.Skip, "");
        if (last.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
        {
            var target = last[WhiteoutPrefix.Length..];
            if (target is "" or "." or "..") throw new ImageException($"layer entry \"{name}\": a whiteout of \"{target}\" (it would leave the layer or name its directory)");
            return (Kind.Whiteout, parent.Length == 0 ? target : parent + "/" + target);
        }
        return (Kind.Entry, string.Join('/', parts));
    }

    /// <summary>A hard link's target, as a path inside the layer (checked like any entry name).</summary>
    public static string LinkTarget(string entry, string target)
    {
        var parts = Normalize(target, $"layer entry \"{entry}\": hard link target");
        if (parts.Count == 0) throw new ImageException($"layer entry \"{entry}\": a hard link to the layer's root");
        return string.Join('/', parts);
    }

    private static List<string> Normalize(string name, string? what = null)
    {
        what ??= $"layer entry \"{name}\"";
        if (name.Contains('\0')) throw new ImageException($"{what} contains a NUL character");
        if (name.StartsWith('/')) throw new ImageException($"{what} is an absolute path (a layer holds relative paths only)");
        var parts = new List<string>();
        foreach (var part in name.Split('/'))
        {
            if (part is "" or ".") continue;
            if (part == "..") throw new ImageException($"{what} contains \"..\" (it would leave the layer)");
            parts.Add(part);
        }
        return parts;
    }
}
