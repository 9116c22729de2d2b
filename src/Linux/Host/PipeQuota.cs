namespace Garden.Linux.Host;

/// <summary>The kernel's soft limit on the pipe buffers of one user (<c>/proc/sys/fs/pipe-user-pages-soft</c>, pages per
/// host uid; the kernel's default is 16384, 64 MiB; 0 is no limit). Past it, every new pipe of that user gets two pages
/// (8 KiB) instead of sixteen and cannot grow. The kernel counts it per host uid, not per user namespace, and with
/// Garden's mapping every unprivileged container's root is the one host uid 4294967294: the pipes of all containers
/// (each process's stdin, stdout and stderr, a StreamIn's 256 KiB pipe, a user's own) count against one limit. With ~80
/// busy containers a StreamIn's pipe was measured at 8 KiB and took 2-3 times as long, whatever container it was for;
/// and one container growing its own empty pipes to 1 MiB each (F_SETPIPE_SZ, ~10 KiB of kernel memory apiece) reached
/// any share of it within a second, shrinking every other container's pipes (Escape/SharedQuotaEscapeTests). No value
/// of a limit shared by all containers can hold one container to its share, so gardend lifts it (0): what a container's
/// pipes hold stays charged to its own memory cgroup, which bounds it, and 1 MiB a pipe (fs.pipe-max-size) stays the
/// most a container may grow one to.</summary>
public sealed class PipeQuota(string file = "/proc/sys/fs/pipe-user-pages-soft")
{
    /// <summary>Lifts the soft limit; returns the change ("fs.pipe-user-pages-soft 16384 -> 0 (none)"), or null when
    /// there was none. A value that is not a number is an error naming the file.</summary>
    public string? Lift()
    {
        var text = File.ReadAllText(file).Trim();
        if (!long.TryParse(text, out var current))
            throw new InvalidDataException($"{file} reads \"{text}\", not a number");
        if (current == 0) return null;
        File.WriteAllText(file, "0");
        return $"fs.pipe-user-pages-soft {current} -> 0 (none)";
    }
}
