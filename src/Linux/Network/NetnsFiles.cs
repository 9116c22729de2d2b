using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Network;

/// <summary>Named network namespaces as iproute2 keeps them: a file in /run/netns with the namespace bind-mounted on it,
/// /run/netns itself a shared mount point so that the binds propagate (and an unmount anywhere frees the namespace).
/// What `ip netns attach NAME PID` and `ip netns del NAME` do, without the process.</summary>
internal static class NetnsFiles
{
    /// <summary>Binds the namespace at <paramref name="netnsSource"/> (e.g. /proc/PID/ns/net) to <paramref name="path"/>.</summary>
    public static void Attach(string path, string netnsSource, string what)
    {
        var dir = Path.GetDirectoryName(path)!;
        try
        {
            SharedMountPoint(dir);
            using (Sys.Open(path, LibC.O_RDONLY | LibC.O_CREAT | LibC.O_EXCL | LibC.O_CLOEXEC, 0)) { }
        }
        catch (LinuxException e)
        {
            throw new NetworkException($"{what}: cannot make {path}: {e.Message}");
        }
        try
        {
            Sys.Mount(netnsSource, path, "none", LibC.MS_BIND, null);
        }
        catch (LinuxException e)
        {
            File.Delete(path);
            throw new NetworkException($"{what}: cannot bind {netnsSource} to {path}: {e.Message}");
        }
    }

    /// <summary>Unbinds and removes the name; a name that is not there is fine.</summary>
    public static void Delete(string path, string what)
    {
        try
        {
            Sys.Unmount(path, LibC.MNT_DETACH);
            File.Delete(path);
        }
        catch (Exception e) when (e is LinuxException or IOException or UnauthorizedAccessException)
        {
            throw new NetworkException($"{what}: cannot remove {path}: {e.Message}");
        }
    }

    /// <summary>As iproute2: make the directory shared (recursively), and first a mount point of itself if it is not one.</summary>
    private static void SharedMountPoint(string dir)
    {
        try
        {
            Sys.Mount("", dir, "none", LibC.MS_SHARED | LibC.MS_REC, null);
        }
        catch (LinuxException e) when (e.Errno == LibC.EINVAL)
        {
            Sys.Mount(dir, dir, "none", LibC.MS_BIND | LibC.MS_REC, null);
            Sys.Mount("", dir, "none", LibC.MS_SHARED | LibC.MS_REC, null);
        }
    }
}
