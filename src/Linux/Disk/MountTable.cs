using System.Text;

namespace Garden.Linux.Disk;

/// <summary>Reads /proc/self/mountinfo: which paths are mount points.</summary>
internal static class MountTable
{
    /// <summary>The mount points, unescaped (the kernel writes space, tab, newline and backslash as \ooo).</summary>
    public static IEnumerable<string> MountPoints() => Entries().Select(e => e.MountPoint);

    /// <summary>(mount point, mount source) of every mount, in mount order.</summary>
    public static IEnumerable<(string MountPoint, string Source)> Entries()
    {
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-", 6);
            if (fields.Length < 5) continue;
            var source = dash > 0 && dash + 2 < fields.Length ? Unescape(fields[dash + 2]) : "";
            yield return (Unescape(fields[4]), source);
        }
    }

    /// <summary>The source of the topmost mount at <paramref name="path"/>, or null when it is not a mount point.</summary>
    public static string? SourceOf(string path) => Entries().LastOrDefault(e => e.MountPoint == path).Source;

    public static bool IsMountPoint(string path) => MountPoints().Any(m => m == path);

    /// <summary>Mount points strictly below <paramref name="path"/>.</summary>
    public static bool HasMountsBelow(string path)
    {
        var prefix = path.TrimEnd('/') + "/";
        return MountPoints().Any(m => m.StartsWith(prefix, StringComparison.Ordinal));
    }

    internal static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 3 < s.Length && IsOctal(s[i + 1]) && IsOctal(s[i + 2]) && IsOctal(s[i + 3]))
            {
                sb.Append((char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'))); // only ASCII is escaped
                i += 3;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    private static bool IsOctal(char c) => c is >= '0' and <= '7';
}
