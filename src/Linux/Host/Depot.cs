using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;

namespace Garden.Linux.Host;

/// <summary>A container's directory on the host (<c>depot/&lt;handle&gt;</c>: its bundle, logs, name files, upper layer)
/// and the directory of the agents' sockets.</summary>
public interface IDepot
{
    /// <summary>Makes the depot and the sockets' directory, root's only (0700); both may exist already.</summary>
    void Create(string depot, string socketDir);

    /// <summary>What the container's init wrote to its stderr (<see cref="RuncRuntime.StartupLog"/> in the bundle) before
    /// the agent pointed it at /dev/null: why it did not start. Empty when there is nothing or it cannot be read.</summary>
    IReadOnlyList<string> StartupErrors(string bundle);

    /// <summary>Removes the agent's socket and the depot's tree, without following symlinks. Idempotent.</summary>
    void Delete(string depot, string agentSocket);

    /// <summary>Makes <paramref name="alias"/> a symlink to <paramref name="target"/> (a name in the same directory): a
    /// container taken from the warm pool is found by its handle under the mount dir. A symlink already there is replaced;
    /// anything else there is an error (never followed, never removed).</summary>
    void Alias(string alias, string target) { }

    /// <summary>Removes <paramref name="alias"/> when it is a symlink (never what it points to, never anything else). Idempotent.</summary>
    void RemoveAlias(string alias) { }
}

public sealed class Depot : IDepot
{
    private const UnixFileMode RootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public void Create(string depot, string socketDir)
    {
        Directory.CreateDirectory(depot, RootOnly);
        Directory.CreateDirectory(socketDir, RootOnly);
    }

    public IReadOnlyList<string> StartupErrors(string bundle)
    {
        try
        {
            return File.ReadLines(Path.Combine(bundle, RuncRuntime.StartupLog)).ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }

    public void Delete(string depot, string agentSocket)
    {
        if (File.Exists(agentSocket)) File.Delete(agentSocket);
        OverlayRootfs.DeleteTree(depot);
    }

    public void Alias(string alias, string target)
    {
        RemoveAlias(alias);
        if (File.Exists(alias) || Directory.Exists(alias) || new FileInfo(alias).LinkTarget is not null)
            throw new IOException($"{alias} exists and is not a symlink: not replaced");
        File.CreateSymbolicLink(alias, target);
    }

    public void RemoveAlias(string alias)
    {
        if (new FileInfo(alias).LinkTarget is not null) File.Delete(alias); // unlink(2): the link, not what it points to
    }
}
