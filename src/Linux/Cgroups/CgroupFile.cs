using System.Globalization;
using System.Text;

namespace Garden.Linux.Cgroups;

/// <summary>Reads and writes single cgroup files. Every write is one write(2) of the whole value on a file opened
/// without O_CREAT, so the kernel sees exactly one value and a missing controller file is an error, not a new file.</summary>
internal static class CgroupFile
{
    public static string Read(string path) => File.ReadAllText(path).Trim();

    public static ulong ReadULong(string path) => ParseULong(Read(path), path);

    public static long ReadLong(string path)
    {
        var text = Read(path);
        return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new FormatException($"{path}: expected a number, found '{text}'");
    }

    /// <summary>"max" (v2, pids) means unlimited: null.</summary>
    public static ulong? ReadMax(string path)
    {
        var text = Read(path);
        return text == "max" ? null : ParseULong(text, path);
    }

    /// <summary>A flat-keyed file ("key value" per line: memory.stat, memory.events, cpu.stat, memory.oom_control).</summary>
    public static Dictionary<string, ulong> ReadKeyed(string path)
    {
        var result = new Dictionary<string, ulong>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(path))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var v))
                result[parts[0]] = v;
        }
        return result;
    }

    public static ulong ReadKey(string path, string key) => ReadKeyed(path).GetValueOrDefault(key);

    public static void Write(string path, string value)
    {
        // O_WRONLY|O_TRUNC: the truncation is a no-op on cgroupfs and keeps a fake cgroupfs (regular files) exact.
        using var handle = File.OpenHandle(path, FileMode.Truncate, FileAccess.Write, FileShare.ReadWrite);
        RandomAccess.Write(handle, Encoding.ASCII.GetBytes(value), 0);
    }

    public static string Str(ulong v) => v.ToString(CultureInfo.InvariantCulture);

    public static string Str(long v) => v.ToString(CultureInfo.InvariantCulture);

    private static ulong ParseULong(string text, string path) =>
        ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new FormatException($"{path}: expected a number, found '{text}'");
}

/// <summary>One Apply call: writes values and remembers what each file held before, so a refusal can put every
/// earlier write back (in reverse order, which also respects ordering rules such as memsw ≥ limit).</summary>
internal sealed class LimitWriter
{
    private readonly Stack<(string Path, string Old)> _done = new();

    /// <summary>Reads a value the decision depends on; a failure is reported like a refused write.</summary>
    public ulong ReadULong(string path, string field)
    {
        try { return CgroupFile.ReadULong(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new CgroupLimitException($"{field}: cannot read {path}: {e.Message}", e);
        }
    }

    public void Write(string path, string value, string field)
    {
        string old;
        try
        {
            old = CgroupFile.Read(path);
            CgroupFile.Write(path, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CgroupLimitException($"{field}: the kernel refused {value} in {path}: {e.Message}", e);
        }
        _done.Push((path, old));
    }

    /// <summary>Puts back every value written so far; returns what could not be put back (empty when all went back).</summary>
    public IReadOnlyList<string> Rollback()
    {
        var failures = new List<string>();
        while (_done.TryPop(out var w))
        {
            try { CgroupFile.Write(w.Path, w.Old); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                failures.Add($"{w.Path} (was {w.Old}): {e.Message}");
            }
        }
        return failures;
    }
}

/// <summary>Accumulates metrics piece by piece (each controller fills in what it knows).</summary>
internal sealed class MetricsBuilder
{
    public ulong MemoryUsageBytes;
    public ulong? MemoryLimitBytes;
    public IReadOnlyDictionary<string, ulong> MemoryStat = new Dictionary<string, ulong>();
    public ulong OomKills;
    public ulong CpuUsageNs, CpuUserNs, CpuSystemNs;
    public ulong PidsCurrent;
    public ulong? PidsMax;

    public CgroupMetrics Build() => new(MemoryUsageBytes, MemoryLimitBytes, MemoryStat, OomKills,
        CpuUsageNs, CpuUserNs, CpuSystemNs, PidsCurrent, PidsMax);
}
