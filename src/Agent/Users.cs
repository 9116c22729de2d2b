using Garden.Protocol.Agent;

namespace Garden.Agent;

/// <summary>Who a process runs as; resolved from the container's /etc/passwd and /etc/group (a static binary has no NSS).</summary>
internal sealed record Credentials(uint Uid, uint Gid, uint[] Groups, string? Name, string Home);

internal static class Users
{
    public static string PasswdPath = "/etc/passwd";
    public static string GroupPath = "/etc/group";

    private sealed record PasswdEntry(string Name, uint Uid, uint Gid, string Home);

    private sealed record GroupEntry(string Name, uint Gid, string[] Members);

    /// <summary>user is "" (root), a name, "uid", "uid:gid", or "name:group".</summary>
    public static Credentials Resolve(string user)
    {
        if (string.IsNullOrEmpty(user)) user = "0";
        string userPart = user, groupPart = "";
        int colon = user.IndexOf(':');
        if (colon >= 0)
        {
            userPart = user[..colon];
            groupPart = user[(colon + 1)..];
        }

        var passwd = ReadPasswd();
        PasswdEntry? entry;
        uint uid, gid;
        if (uint.TryParse(userPart, out uid))
        {
            entry = passwd.FirstOrDefault(p => p.Uid == uid);
            gid = entry?.Gid ?? 0;
        }
        else
        {
            entry = passwd.FirstOrDefault(p => p.Name == userPart)
                ?? throw new AgentErrorException(ErrorCode.NoSuchUser, $"no such user: {userPart} (not in /etc/passwd)");
            uid = entry.Uid;
            gid = entry.Gid;
        }

        var groups = ReadGroups();
        if (groupPart.Length > 0)
        {
            if (!uint.TryParse(groupPart, out gid))
            {
                var g = groups.FirstOrDefault(x => x.Name == groupPart)
                    ?? throw new AgentErrorException(ErrorCode.NoSuchUser, $"no such group: {groupPart} (not in /etc/group)");
                gid = g.Gid;
            }
        }

        // A uid without an entry in /etc/passwd has no supplementary groups (runc's and Garden's: `id` shows none).
        var supplementary = entry is null ? new List<uint>() : new List<uint> { gid };
        if (entry != null)
        {
            foreach (var g in groups)
            {
                if (Array.IndexOf(g.Members, entry.Name) >= 0 && !supplementary.Contains(g.Gid)) supplementary.Add(g.Gid);
            }
        }

        return new Credentials(uid, gid, supplementary.ToArray(), entry?.Name, entry?.Home is { Length: > 0 } h ? h : "/");
    }

    // What /etc/passwd and /etc/group held when last read, and which version of the file that was: a Run reads them again
    // only when they changed (measured: reading and parsing both was 80-250 us of every spawn). A version is the file's
    // device, inode, size, mtime and ctime; one whose ctime was less than RacyNs before it was read is not kept, since a
    // change within the file system's timestamp granularity (a jiffy) would leave all five the same.
    private const ulong RacyNs = 2_000_000_000;
    private static readonly object CacheGate = new();
    private static (string Path, ulong[] Version, List<PasswdEntry> Entries)? _passwd;
    private static (string Path, ulong[] Version, List<GroupEntry> Entries)? _groups;

    /// <summary>The file's version (see above), or null when it cannot be told or is too recent to trust.</summary>
    private static unsafe ulong[]? StableVersion(string path)
    {
        var v = new ulong[6];
        fixed (ulong* p = v)
            if (Native.FileVersion(path, p) != 0) return null;
        ulong ctime = v[4], now = v[5];
        return now > ctime && now - ctime >= RacyNs ? v[..5] : null;
    }

    private static List<T> Cached<T>(ref (string Path, ulong[] Version, List<T> Entries)? slot, string path, Func<List<T>> read)
    {
        // stat before reading: a change in between is read now and seen as a new version next time
        var version = StableVersion(path);
        lock (CacheGate)
            if (version is not null && slot is { } c && c.Path == path && c.Version.AsSpan().SequenceEqual(version))
                return c.Entries;
        var entries = read();
        lock (CacheGate) slot = version is null ? null : (path, version, entries);
        return entries;
    }

    private static List<PasswdEntry> ReadPasswd() => Cached(ref _passwd, PasswdPath, ParsePasswd);

    private static List<GroupEntry> ReadGroups() => Cached(ref _groups, GroupPath, ParseGroups);

    private static List<PasswdEntry> ParsePasswd()
    {
        var list = new List<PasswdEntry>();
        foreach (var f in ReadFields(PasswdPath))
        {
            if (f.Length < 6 || !uint.TryParse(f[2], out var uid) || !uint.TryParse(f[3], out var gid)) continue;
            list.Add(new PasswdEntry(f[0], uid, gid, f[5]));
        }
        return list;
    }

    private static List<GroupEntry> ParseGroups()
    {
        var list = new List<GroupEntry>();
        foreach (var f in ReadFields(GroupPath))
        {
            if (f.Length < 3 || !uint.TryParse(f[2], out var gid)) continue;
            var members = f.Length > 3 && f[3].Length > 0 ? f[3].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) : [];
            list.Add(new GroupEntry(f[0], gid, members));
        }
        return list;
    }

    private static IEnumerable<string[]> ReadFields(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (IOException)
        {
            yield break;
        }
        catch (UnauthorizedAccessException)
        {
            yield break;
        }
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            yield return line.Split(':');
        }
    }
}

/// <summary>A request failed with a protocol error code.</summary>
internal sealed class AgentErrorException(ErrorCode code, string message) : Exception(message)
{
    public ErrorCode Code { get; } = code;
}
