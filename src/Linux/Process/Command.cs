using System.Collections;
using System.Runtime.InteropServices;
using System.Text;
using Garden.Linux.Interop;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Garden.Linux.Process;

public sealed record CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public bool Succeeded => ExitCode == 0;
}

/// <summary>Where a command's stdout/stderr go: captured through pipes, or to a file (for commands whose
/// children outlive them, like `runc run -d`, whose init would otherwise hold our pipe open forever);
/// ExtraFiles become fds 3, 4, ... in the child.</summary>
public sealed record CommandOutput(string? StdoutFile = null, string? StderrFile = null, IReadOnlyList<SafeHandle>? ExtraFiles = null)
{
    public static readonly CommandOutput Capture = new();
}

/// <summary>Runs a host command with posix_spawn: an empty signal mask, default dispositions, stdin /dev/null.</summary>
public static class Command
{
    /// <summary>The absolute path of a program: as given when it has a '/', else the first match in PATH.</summary>
    public static string Resolve(string program)
    {
        if (program.Contains('/')) return program;
        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = System.IO.Path.Combine(dir, program);
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException($"{program} not found in PATH ({path}); install it (make install) or configure its path", program);
    }

    public static Task<CommandResult> RunAsync(string path, IReadOnlyList<string> args, CancellationToken ct = default) =>
        RunAsync(path, args, CommandOutput.Capture, ct);

    public static Task<CommandResult> RunAsync(string path, IReadOnlyList<string> args, CommandOutput output, CancellationToken ct = default) =>
        RunAsync(path, path, args, output, ct);

    /// <summary>Runs the file at <paramref name="path"/> (which may be a /proc/self/fd path) with <paramref name="argv0"/> as its name.</summary>
    public static async Task<CommandResult> RunAsync(string path, string argv0, IReadOnlyList<string> args, CommandOutput output, CancellationToken ct = default)
    {
        var (pid, outRead, errRead) = Spawn(path, argv0, args, output);
        var result = await CommandWatch.Follow(pid, outRead, errRead).ConfigureAwait(false);
        return output.StderrFile is null ? result : result with { Stderr = ReadTail(output.StderrFile) };
    }

    private static string ReadTail(string file)
    {
        try { return File.ReadAllText(file); } catch (IOException) { return ""; }
    }

    /// <summary>Starts the program; returns its pid and the read ends of the pipes of its captured stdout and stderr.</summary>
    private static unsafe (int Pid, SafeFd? Stdout, SafeFd? Stderr) Spawn(string path, string argv0, IReadOnlyList<string> args, CommandOutput output)
    {
        var fa = stackalloc byte[Sys.SpawnStructSize];
        var attr = stackalloc byte[Sys.SpawnStructSize];
        SafeFd? outRead = null, errRead = null;
        var allocated = new List<IntPtr>();
        var childEnds = new List<SafeFd>(); // write ends and duplicates: the child gets copies, ours close after the spawn
        try
        {
            Sys.FileActionsInit(fa);
            Sys.SpawnAttrInit(attr);
            Sys.FileActionsAddOpen(fa, 0, "/dev/null", LibC.O_RDONLY, 0);
            outRead = ConnectOutput(fa, 1, output.StdoutFile, childEnds);
            errRead = ConnectOutput(fa, 2, output.StderrFile, childEnds);
            var extra = output.ExtraFiles ?? [];
            for (var i = 0; i < extra.Count; i++)
            {
                // Duplicate above the target range first: dup2(3, 3) would keep FD_CLOEXEC set.
                var high = Sys.FcntlDupCloexec(extra[i], 100);
                childEnds.Add(high);
                Sys.FileActionsAddDup2(fa, high, 3 + i);
            }
            Sys.SpawnAttrResetSignals(attr);

            var argv = stackalloc byte*[args.Count + 2];
            argv[0] = Utf8(argv0, allocated);
            for (var i = 0; i < args.Count; i++) argv[i + 1] = Utf8(args[i], allocated);
            argv[args.Count + 1] = null;

            var env = Environment.GetEnvironmentVariables();
            var envp = stackalloc byte*[env.Count + 1];
            var n = 0;
            foreach (DictionaryEntry e in env) envp[n++] = Utf8($"{e.Key}={e.Value}", allocated);
            envp[n] = null;

            int pid;
            var rc = Sys.PosixSpawn(&pid, Utf8(path, allocated), fa, attr, argv, envp);
            if (rc != 0) throw new LinuxException("posix_spawn", path, rc);
            var spawned = (pid, outRead, errRead);
            outRead = errRead = null;
            return spawned;
        }
        finally
        {
            Sys.FileActionsDestroy(fa);
            Sys.SpawnAttrDestroy(attr);
            foreach (var fd in childEnds) fd.Dispose();
            outRead?.Dispose();
            errRead?.Dispose();
            foreach (var p in allocated) Marshal.FreeHGlobal(p);
        }
    }

    /// <summary>Points the child's <paramref name="fd"/> at a file (created 0600, truncated) or at the write end of a new
    /// pipe, whose read end is returned.</summary>
    private static unsafe SafeFd? ConnectOutput(void* fa, int fd, string? file, List<SafeFd> childEnds)
    {
        if (file is not null)
        {
            Sys.FileActionsAddOpen(fa, fd, file, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC, (ushort)(LibC.S_IRUSR | LibC.S_IWUSR));
            return null;
        }
        var (read, write) = Sys.Pipe();
        childEnds.Add(write);
        Sys.FileActionsAddDup2(fa, write, fd);
        return read;
    }

    private static unsafe byte* Utf8(string s, List<IntPtr> allocated)
    {
        var bytes = Encoding.UTF8.GetByteCount(s);
        var p = (byte*)Marshal.AllocHGlobal(bytes + 1);
        allocated.Add((IntPtr)p);
        fixed (char* c = s) Encoding.UTF8.GetBytes(c, s.Length, p, bytes);
        p[bytes] = 0;
        return p;
    }
}
