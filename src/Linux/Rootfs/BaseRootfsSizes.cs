using System.Collections.Concurrent;

namespace Garden.Linux.Rootfs;

/// <summary>How many bytes a base rootfs (a container's shared, read-only lower layer) holds: what Garden counts as the
/// image in a container's total disk use (ContainerDiskStat.TotalBytesUsed = image + what the container wrote).</summary>
public interface IBaseRootfsSizes
{
    /// <summary>The bytes of the regular files under <paramref name="baseRootfs"/>, walked once per directory and cached
    /// (a base rootfs does not change under its containers); the walk runs on the thread pool.</summary>
    Task<ulong> SizeAsync(string baseRootfs);
}

/// <summary>A du-like walk (apparent sizes of regular files; symbolic links are neither followed nor counted, a file with
/// several hard links counts each time), cached per full path. A failed walk is not cached: the next ask tries again.</summary>
public sealed class BaseRootfsSizes : IBaseRootfsSizes
{
    private readonly ConcurrentDictionary<string, Lazy<Task<ulong>>> _sizes = new(StringComparer.Ordinal);

    public Task<ulong> SizeAsync(string baseRootfs)
    {
        var key = Path.TrimEndingDirectorySeparator(Path.GetFullPath(baseRootfs));
        while (true)
        {
            var lazy = _sizes.GetOrAdd(key, k => new Lazy<Task<ulong>>(() => Task.Run(() => Walk(k))));
            var task = lazy.Value;
            if (!task.IsFaulted && !task.IsCanceled) return task;
            // an earlier walk failed: forget it and walk again (once it failed this time, its error is the answer)
            if (!_sizes.TryRemove(new KeyValuePair<string, Lazy<Task<ulong>>>(key, lazy))) continue;
            return _sizes.GetOrAdd(key, k => new Lazy<Task<ulong>>(() => Task.Run(() => Walk(k)))).Value;
        }
    }

    public static ulong Walk(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"no base rootfs at {dir}");
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true,
            ReturnSpecialDirectories = false,
        };
        ulong total = 0;
        foreach (var f in new DirectoryInfo(dir).EnumerateFiles("*", options)) total += (ulong)f.Length;
        return total;
    }
}
