namespace Garden.Linux.Host;

/// <summary>The host's real capacity.</summary>
public interface IHostResources
{
    ulong MemoryBytes();
    ulong DiskBytes(string path);

    /// <summary>True when a TCP socket of the host is bound to the port (a listener would be shadowed by a NetIn).</summary>
    bool TcpPortInUse(int port);

    /// <summary>The canonical path (every symlink resolved, realpath(3)), or null when it does not exist.</summary>
    string? ResolvePath(string path);
}

public sealed class HostResources : IHostResources
{
    public string? ResolvePath(string path)
    {
        try
        {
            return Interop.Sys.Realpath(path);
        }
        catch (Interop.LinuxException)
        {
            return null; // ENOENT, ENOTDIR, a loop of symlinks, ...: not a path that can be mounted
        }
    }

    public bool TcpPortInUse(int port)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork,
            System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Socket, System.Net.Sockets.SocketOptionName.ReuseAddress, true);
        try
        {
            socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Any, port));
            return false;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return true;
        }
    }

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
