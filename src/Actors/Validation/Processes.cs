using System.Collections.Immutable;

namespace Garden.Actors;

/// <summary>An environment: KEY=VALUE entries with a non-empty KEY (a container's, at create, and a process's, at run).</summary>
public static class EnvEntries
{
    /// <summary>The environment a process gets: the container's, then the process's, a later KEY replacing an earlier one
    /// in its place (Garden's rule: container CONTAINER_ENV=1 TEST=hi with process TEST=hello FRUIT=banana gives
    /// CONTAINER_ENV=1 TEST=hello FRUIT=banana). Never two entries of one KEY: getenv would find the container's first.</summary>
    public static System.Collections.Immutable.ImmutableArray<string> Merge(IEnumerable<string> container, IEnumerable<string> process)
    {
        var merged = new List<string>();
        var at = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var e in container.Concat(process))
        {
            var key = e.IndexOf('=') is var i and >= 0 ? e[..i] : e;
            if (at.TryGetValue(key, out var index)) merged[index] = e;
            else
            {
                at[key] = merged.Count;
                merged.Add(e);
            }
        }
        return [.. merged];
    }

    public static GardenException? Problem(IEnumerable<string> env)
    {
        foreach (var e in env)
            if (!e.Contains('=') || e.StartsWith('=')) return GardenException.Invalid("env", $"{Names.Quote(e)} is not KEY=VALUE");
        return null;
    }
}

/// <summary>How much execve(2) takes, checked before a process is spawned, so that a too large environment is the caller's
/// InvalidArgument naming <c>env</c> (or <c>args</c>), not the kernel's E2BIG from deep inside a spawn. The kernel's rules:
/// one string (an argument or an entry KEY=VALUE) at most MAX_ARG_STRLEN, 128 KiB with its NUL; all of them together
/// (their bytes, NULs and one pointer each) within a quarter of the process's stack limit, 2 MiB with the usual 8 MiB.
/// The bound here: each string at most <see cref="MaxString"/> bytes, and the arguments and the environment (the
/// container's and the process's, as the process gets it) together at most <see cref="MaxTotal"/>, half of those 2 MiB,
/// leaving room for what the agent adds (HOME, USER, PATH). What still does not fit — a Run that asks for a small stack
/// rlimit shrinks the kernel's budget, never below 128 KiB — comes back from the agent as E2BIG and becomes the same
/// error (GardenErrors).</summary>
public static class ExecArgs
{
    public const int MaxString = (128 << 10) - 1;
    public const int MaxTotal = 1 << 20;

    /// <summary>What is wrong with these arguments and this environment for execve, or null.</summary>
    public static GardenException? Problem(IReadOnlyCollection<string> args, IReadOnlyCollection<string> env)
    {
        static long Bytes(string s) => System.Text.Encoding.UTF8.GetByteCount(s) + 1 + sizeof(long);
        foreach (var (field, strings) in new[] { ("env", env), ("args", args) })
            foreach (var s in strings)
                if (System.Text.Encoding.UTF8.GetByteCount(s) is var n && n > MaxString)
                    return GardenException.Invalid(field, $"{Names.Quote(s[..32] + "...")} is {n} bytes long; execve takes at most {MaxString} bytes in one string");
        long envBytes = env.Sum(Bytes), argBytes = args.Sum(Bytes);
        if (envBytes + argBytes <= MaxTotal) return null;
        return GardenException.Invalid(envBytes >= argBytes ? "env" : "args",
            $"the environment ({env.Count} entries, {envBytes} bytes) and the arguments ({args.Count}, {argBytes} bytes) are too large for execve: at most {MaxTotal} bytes together, counting a NUL and a pointer for each string");
    }
}

/// <summary>Resource limits of a process (setrlimit(2)): the names a Run, and garden.default-rlimits, may use. A name is
/// given as "nofile", "NOFILE" or "RLIMIT_NOFILE". (The agent maps each to its resource number.)</summary>
public static class RlimitNames
{
    public static readonly ImmutableArray<string> Known =
        ["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
         "rttime", "sigpending", "stack"];

    /// <summary>"nofile" for "nofile", "NOFILE" and "RLIMIT_NOFILE"; null when the name is none of <see cref="Known"/>.</summary>
    public static string? Canonical(string name)
    {
        var n = name.StartsWith("rlimit_", StringComparison.OrdinalIgnoreCase) ? name[7..] : name;
        n = n.ToLowerInvariant();
        return Known.Contains(n) ? n : null;
    }

    public static GardenException? Problem(RlimitSpec r)
    {
        if (Canonical(r.Name) is not { } name)
            return GardenException.Invalid("rlimit", $"{Names.Quote(r.Name)} is not a resource limit (one of {string.Join(", ", Known)})");
        if (r.Soft > r.Hard)
            return GardenException.Invalid($"rlimit {name}", $"the soft limit {r.Soft} is above the hard limit {r.Hard}");
        return null;
    }

    public static GardenException? Problem(IEnumerable<RlimitSpec> rlimits) => rlimits.Select(r => Problem(r)).FirstOrDefault(p => p is not null);
}

/// <summary>Signal numbers a client may send to a process.</summary>
public static class Signals
{
    public const int Max = 64; // SIGRTMAX

    public static GardenException? Problem(int signal) =>
        signal is < 1 or > Max ? GardenException.Invalid("signal", $"{signal} is not a signal number (1-{Max})") : null;
}

public sealed partial record TtySize
{
    public const uint Max = 10_000;

    /// <summary>A resize: at least one and at most <see cref="Max"/> rows and columns.</summary>
    public GardenException? Problem() =>
        Rows is 0 or > Max || Cols is 0 or > Max
            ? GardenException.Invalid("tty", $"{Rows}x{Cols} is out of range (1 to {Max} rows and columns)")
            : null;
}

public sealed partial record ProcessSpec
{
    /// <summary>What is wrong with a process to run, or null: its id (when it names one; empty = generated), its path,
    /// its env and its rlimits.</summary>
    public GardenException? Problem()
    {
        if (Id.Length > 0 && Names.Problem(Id) is { } badId) return GardenException.Invalid("process id", $"{Names.Quote(Id)} {badId}");
        if (Path.Length == 0) return GardenException.Invalid("path", "must not be empty");
        // a pea's image: a host directory, absolute (where it may be is checked where it is resolved: Kernel/PeaKernel)
        if (IsPea && (Image[0] != '/' || Image.Contains('\0')))
            return GardenException.Invalid("image", $"\"{Image}\" is not an absolute directory path on the host");
        if (!IsPea && PeaLimits is not null)
            return GardenException.Invalid("pea_limits", "limits of a process need a process image (image): an ordinary process shares its container's");
        return EnvEntries.Problem(Env) ?? ExecArgs.Problem(Args, Env) ?? RlimitNames.Problem(Rlimits);
    }
}

/// <summary>Where a pea's image (a host directory) may be.</summary>
public static class PeaImage
{
    /// <summary>What is wrong with <paramref name="image"/> (as asked; <paramref name="resolved"/>: its canonical path, or
    /// null when it does not exist), or null. Besides existing, it must neither be, nor lie inside, nor hold one of
    /// <paramref name="hostOnly"/> (resolved): a pea's root is an overlay of it that the pea reads as its own, so an image
    /// of "/" or of a parent of the state dir would give it gardend's journal and sockets.</summary>
    public static GardenException? Problem(string image, string? resolved, IReadOnlyCollection<string> hostOnly)
    {
        if (image.Length == 0 || image[0] != '/')
            return GardenException.Invalid("image", $"\"{image}\" is not an absolute directory path on the host");
        var spelled = resolved is null || resolved == image ? "" : $" (that is {resolved})";
        if (resolved is null || !Directory.Exists(resolved))
            return GardenException.Invalid("image", $"\"{image}\"{spelled} does not exist on the host or is not a directory");
        return RootDirectory.Problem("image", image, resolved, hostOnly);
    }
}

/// <summary>A host directory that becomes a root file system (a Create's rootfs, a pea's image): the lower layer of an
/// overlay its container reads as its own.</summary>
public static class RootDirectory
{
    /// <summary>What is wrong with <paramref name="path"/> (<paramref name="resolved"/>: its canonical path), or null: it
    /// must neither be, nor lie inside, nor hold one of <paramref name="hostOnly"/> (resolved), or a root of "/" or of a
    /// parent of the state dir would give the container gardend's journal (every container's environment) and sockets.</summary>
    public static GardenException? Problem(string field, string path, string resolved, IReadOnlyCollection<string> hostOnly)
    {
        var spelled = resolved == path ? "" : $" (that is {resolved})";
        if (hostOnly.FirstOrDefault(root => BindMount.IsAtOrUnder(resolved, root) || BindMount.IsAtOrUnder(root, resolved)) is { } forbidden)
            return GardenException.Invalid(field, $"\"{path}\"{spelled} is, holds or lies inside {forbidden}, which only gardend may use: " +
                "a container must not reach the daemon's state, journal or sockets");
        return null;
    }
}
