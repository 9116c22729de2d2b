namespace Garden.Actors;

/// <summary>The one definition of a bind mount a Create may ask for.</summary>
public sealed partial record BindMount
{
    /// <summary>Where no caller may mount: the container's kernel file systems, and the agent's own directory.</summary>
    private static readonly string[] Reserved = ["/proc", "/sys", "/dev", "/.garden"];

    /// <summary>What is wrong with this mount as an error naming the field and the value, or null. Checked before
    /// anything is made. <paramref name="resolve"/> gives a host path with its symlinks resolved, or null when it does not
    /// exist (a seam for tests); <paramref name="hostOnly"/> are the resolved paths only gardend may use (its state dir,
    /// its API socket, ...): a source that is one of them or inside one is refused, however it is spelled.</summary>
    public GardenException? Problem(int index, Func<string, string?> resolve, IReadOnlyCollection<string> hostOnly)
    {
        var field = $"bind mount {index + 1}";
        if (Source.Length == 0 || Source[0] != '/')
            return GardenException.Invalid($"{field} src", $"\"{Source}\" is not an absolute path on the host");
        if (Destination.Length == 0 || Destination[0] != '/')
            return GardenException.Invalid($"{field} dst", $"\"{Destination}\" is not an absolute path in the container");
        var dst = NormalDestination;
        if (dst == "/")
            return GardenException.Invalid($"{field} dst", $"\"{Destination}\" would hide the container's root");
        if (Reserved.FirstOrDefault(r => dst == r || dst.StartsWith(r + "/", StringComparison.Ordinal)) is { } reserved)
            return GardenException.Invalid($"{field} dst", $"\"{Destination}\" is inside {reserved}, which the container's own mounts own");
        if (resolve(Source) is not { } real)
            return GardenException.Invalid($"{field} src", $"\"{Source}\" does not exist on the host");
        if (hostOnly.FirstOrDefault(root => IsAtOrUnder(real, root)) is { } forbidden)
            return GardenException.Invalid($"{field} src", $"\"{Source}\"{(real == Source ? "" : $" (that is {real})")} is " +
                $"{(real == forbidden ? "" : "inside ")}{forbidden}, which only gardend may use: a container must not reach the daemon's state, journal or sockets");
        return null;
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="root"/> or below it (both absolute and resolved).</summary>
    public static bool IsAtOrUnder(string path, string root)
    {
        var r = root.Length > 1 ? root.TrimEnd('/') : root;
        return path == r || path.StartsWith(r == "/" ? "/" : r + "/", StringComparison.Ordinal);
    }
}
