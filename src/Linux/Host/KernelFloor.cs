namespace Garden.Linux.Host;

/// <summary>A kernel setting gardend needs at least at some value (/proc/sys): raised to it, never lowered; or a per-user
/// limit it lifts altogether.</summary>
internal static class KernelFloor
{
    /// <summary>Writes <paramref name="none"/> (the value that means no limit) to <paramref name="path"/> unless it reads
    /// that already; returns what it read then, or null. A value that is not a number is an error naming the file.</summary>
    public static long? Lift(string path, long none)
    {
        var current = Read(path);
        if (current == none) return null;
        File.WriteAllText(path, none.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return current;
    }

    /// <summary>The number <paramref name="path"/> reads; anything else is an error naming the file.</summary>
    public static long Read(string path)
    {
        var text = File.ReadAllText(path).Trim();
        return long.TryParse(text, out var value) ? value : throw new InvalidDataException($"{path} reads \"{text}\", not a number");
    }

    /// <summary>Writes <paramref name="needed"/> to <paramref name="path"/> when it reads less; returns what it read then,
    /// or null when it was high enough. A value that is not a number is an error naming the file.</summary>
    public static long? Raise(string path, long needed)
    {
        var current = Read(path);
        if (current >= needed) return null;
        File.WriteAllText(path, needed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return current;
    }
}
