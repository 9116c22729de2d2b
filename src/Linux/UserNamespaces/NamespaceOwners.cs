using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.UserNamespaces;

/// <summary>The host uids that own containers' user namespaces, one of its own per container. The kernel counts a user's
/// quotas (inotify instances and watches, message queue bytes, pending signals, processes) first against the user in a
/// namespace, then against the namespace's owner in the namespace above; were host root every container's owner, all
/// containers and host root's own services would share one count and one limit (128 inotify instances by default) that
/// any one container could take whole. Owners come from a block of <see cref="Count"/> ids (<see cref="First"/>..) that
/// no host user and no per-container range may use; an owner is never a process of the host, only the namespace's
/// creator. Handed out in order, skipping those the live namespaces of the host have (read once from /proc, and again
/// when the block comes round), so no two live containers share one across a restart of gardend either.</summary>
public sealed class NamespaceOwners(Func<IEnumerable<uint>> liveOwners)
{
    /// <summary>The first id of the block: 0xFFE00000, well above any per-container range and below Garden's
    /// container root (4294967294).</summary>
    public const uint First = 0xFFE0_0000;

    /// <summary>How many ids the block holds (2^20).</summary>
    public const uint Count = 1 << 20;

    private readonly object _gate = new();
    private HashSet<uint>? _taken;
    private uint _next;

    /// <summary>Reads the owners of the host's live user namespaces from /proc.</summary>
    public NamespaceOwners() : this(LiveOwners)
    {
    }

    public static bool InBlock(uint uid) => uid - First < Count;

    /// <summary>An owner no live namespace has (as far as this process knows), for a new namespace.</summary>
    public uint Next()
    {
        lock (_gate)
        {
            for (var wrapped = false; ; )
            {
                if (_taken is null)
                {
                    _taken = [.. liveOwners().Where(InBlock)];
                    _next = 0;
                }
                while (_next < Count && _taken.Contains(First + _next)) _next++;
                if (_next < Count) return First + _next++;
                // the block came round: the namespaces of the owners handed out since the last read may be gone
                if (wrapped) throw new UserNamespaceException($"every one of the {Count} namespace owner uids from {First} is in use");
                wrapped = true;
                _taken = null;
            }
        }
    }

    /// <summary>The users of <paramref name="passwd"/> whose uid is in the block ("name (uid)"): each would hold every
    /// capability in a container's user namespace it came to own, so gardend refuses to start beside one.</summary>
    public static IReadOnlyList<string> HostUsersInBlock(string passwd = "/etc/passwd")
    {
        if (!File.Exists(passwd)) return [];
        return [.. File.ReadLines(passwd)
            .Select(line => line.Split(':'))
            .Where(f => f.Length > 2 && uint.TryParse(f[2], out var uid) && InBlock(uid))
            .Select(f => $"{f[0]} ({f[2]})")];
    }

    /// <summary>The owners of the user namespaces the host's processes are in (each namespace read once).</summary>
    public static IEnumerable<uint> LiveOwners()
    {
        var seen = new HashSet<string>();
        var owners = new HashSet<uint>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !name.All(char.IsAsciiDigit)) continue;
            var path = Path.Combine(dir, "ns", "user");
            try
            {
                // "user:[INODE]": each namespace once, however many processes are in it
                if (new FileInfo(path).LinkTarget is not { } ns || !seen.Add(ns)) continue;
                using var fd = Sys.TryOpen(path, LibC.O_RDONLY);
                if (fd is not null) owners.Add(Sys.UserNamespaceOwner(fd, path));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or LinuxException)
            {
                // the process exited meanwhile
            }
        }
        return owners;
    }
}
