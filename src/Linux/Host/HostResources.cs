namespace Garden.Linux.Host;

/// <summary>The host's real capacity.</summary>
public interface IHostResources
{
    ulong MemoryBytes();
    ulong DiskBytes(string path);
}

public sealed class HostResources : IHostResources
{
    public ulong MemoryBytes()
    {
        foreach (var line in File.ReadLines("/proc/meminfo"))
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                return ulong.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }

    public ulong DiskBytes(string path)
    {
        Directory.CreateDirectory(path);
        return (ulong)new DriveInfo(path).TotalSize;
    }
}
