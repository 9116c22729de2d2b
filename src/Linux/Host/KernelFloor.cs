namespace Garden.Linux.Host;

/// <summary>A kernel setting gardend needs at least at some value (/proc/sys): raised to it, never lowered.</summary>
internal static class KernelFloor
{
    /// <summary>Writes <paramref name="needed"/> to <paramref name="path"/> when it reads less; returns what it read then,
    /// or null when it was high enough. A value that is not a number is an error naming the file.</summary>
    public static long? Raise(string path, long needed)
    {
        var text = File.ReadAllText(path).Trim();
        if (!long.TryParse(text, out var current))
            throw new InvalidDataException($"{path} reads \"{text}\", not a number");
        if (current >= needed) return null;
        File.WriteAllText(path, needed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return current;
    }
}
