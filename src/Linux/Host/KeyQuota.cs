namespace Garden.Linux.Host;

/// <summary>The kernel's key quota for users other than root (<c>/proc/sys/kernel/keys/maxkeys</c> and <c>maxbytes</c>, per
/// host uid). runc gives every container a session keyring of its own (<c>_ses.ID</c>), charged to the host uid of container
/// root. With Garden's mapping every unprivileged container's root is the one host uid 4294967294, so at the usual default
/// (200 keys) about the 199th container fails to start with "unable to create session key: disk quota exceeded" — below
/// garden.max-containers. Containers cannot add keys of their own (the seccomp profile refuses keyctl, add_key and
/// request_key), so their keyrings are all that uid is charged with. Raised, never lowered; the same thing Garden's
/// release and dockerd do for the quota they need.</summary>
public sealed class KeyQuota(string directory = "/proc/sys/kernel/keys")
{
    /// <summary>What one runc session keyring is charged at most: "_ses." and a runc id (gardend's prefix and a handle of at
    /// most 128 characters here), with room to spare.</summary>
    public const long BytesPerKeyring = 320;

    /// <summary>Keys left to the uid beyond its containers' keyrings (the kernel's own default).</summary>
    public const long Headroom = 200;

    /// <summary>The quota <paramref name="containers"/> keyrings of one uid need.</summary>
    public static (long Keys, long Bytes) Needed(int containers) => (containers + Headroom, (containers + Headroom) * BytesPerKeyring);

    /// <summary>Raises maxkeys and maxbytes to what <paramref name="containers"/> keyrings of one uid need; returns one line
    /// per value it changed ("kernel.keys.maxkeys 200 -> 456"), none when both were high enough.</summary>
    public IReadOnlyList<string> EnsureFor(int containers)
    {
        var (keys, bytes) = Needed(containers);
        var changed = new List<string>();
        Raise("maxkeys", keys, changed);
        Raise("maxbytes", bytes, changed);
        return changed;
    }

    private void Raise(string name, long needed, List<string> changed)
    {
        if (KernelFloor.Raise(Path.Combine(directory, name), needed) is { } before)
            changed.Add($"kernel.keys.{name} {before} -> {needed}");
    }
}
