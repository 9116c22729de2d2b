using System.Collections.Immutable;
using System.Globalization;

namespace Garden.Linux.Runtime;

/// <summary>Capability names by bit number (linux/capability.h), and the bounding set this process holds: a privileged
/// container gets what gardend itself may pass on, no more (runc refuses a capability outside its bounding set).</summary>
public static class HostCapabilities
{
    public static readonly ImmutableArray<string> ByBit =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    private static readonly Lazy<IReadOnlyList<string>> BoundingSet = new(() => Names(ReadMask("CapBnd")));

    /// <summary>gardend's bounding set (/proc/self/status CapBnd), read once.</summary>
    public static IReadOnlyList<string> Bounding => BoundingSet.Value;

    /// <summary>The names of the bits set in <paramref name="mask"/> (bits this table does not name are left out:
    /// runc would refuse a name it does not know).</summary>
    public static IReadOnlyList<string> Names(ulong mask) =>
        [.. Enumerable.Range(0, ByBit.Length).Where(bit => ((mask >> bit) & 1) == 1).Select(bit => ByBit[bit])];

    /// <summary>The mask of the named capabilities.</summary>
    public static ulong Mask(IEnumerable<string> names) =>
        names.Aggregate(0UL, (m, n) => ByBit.IndexOf(n) is var i and >= 0 ? m | (1UL << i) : throw new ArgumentException($"unknown capability {n}"));

    private static ulong ReadMask(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return ulong.Parse(line[(field.Length + 1)..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }
}
