namespace Garden.Agent;

/// <summary>
/// How the host's root (uid 0 of the initial user namespace, gardend) appears to the agent: the uid SO_PEERCRED reports for
/// it. Without a user namespace that is 0. In a user namespace it is the inside uid that host uid 0 maps to, and when host
/// uid 0 is not mapped (Garden's mapping: container 0 → host 4294967294, 1..4294967293 → themselves; or a per-container
/// range) the kernel reports the overflow uid (/proc/sys/kernel/overflowuid, 65534 by default). Computed once at start.
///
/// The limit of this check: every host uid that is not mapped looks like the overflow uid too, and so does a host uid that
/// maps to the same number (with Garden's mapping host uid 65534, nobody, is mapped to itself and looks exactly like host
/// root). SO_PEERCRED cannot tell them apart. The other fence is the socket's place: it is bound by gardend in its state
/// directory (0700, root's), never inside the container, so no other host user can reach it; and a peer inside the
/// container is refused by its pid, which is 0 only for processes outside the container's pid namespace.
/// </summary>
internal sealed class HostRoot(uint uid)
{
    public uint Uid { get; } = uid;

    /// <summary>From /proc/self/uid_map and /proc/sys/kernel/overflowuid; throws IOException when the map cannot be read
    /// (the agent then refuses to start rather than guess).</summary>
    public static HostRoot Detect()
    {
        string map = File.ReadAllText("/proc/self/uid_map");
        uint overflow = 65534;
        try
        {
            if (uint.TryParse(File.ReadAllText("/proc/sys/kernel/overflowuid").Trim(), out var o)) overflow = o;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return new HostRoot(FromUidMap(map, overflow));
    }

    /// <summary>The inside uid that outside uid 0 maps to ("inside outside count" lines), or the overflow uid.</summary>
    public static uint FromUidMap(string uidMap, uint overflowUid)
    {
        bool any = false;
        foreach (var line in uidMap.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 3 || !uint.TryParse(f[0], out var inside) || !uint.TryParse(f[1], out var outside)
                || !uint.TryParse(f[2], out var count))
                throw new IOException($"/proc/self/uid_map: unexpected line \"{line}\"");
            any = true;
            if (outside == 0 && count > 0) return inside;
        }
        if (!any) throw new IOException("/proc/self/uid_map is empty: the user namespace has no mapping yet");
        return overflowUid;
    }
}
