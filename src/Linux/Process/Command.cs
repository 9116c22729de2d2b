using System.Collections;
using System.Runtime.InteropServices;
using System.Text;
using Garden.Linux.Interop;
using Microsoft.Win32.SafeHandles;

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

    public static async Task<CommandResult> RunAsync(string path, IReadOnlyList<string> args, CommandOutput output, CancellationToken ct = default)
    {
        int outRead = -1, errRead = -1;
        int pid = Spawn(path, args, output, ref outRead, ref errRead);
        var stdoutTask = ReadAllAsync(outRead);
        var stderrTask = ReadAllAsync(errRead);
        var exit = await Task.Factory.StartNew(() => Sys.WaitForChild(pid), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
        var stdout = await stdoutTask.ConfigureAwait(false);
        var stderr = await stderrTask.ConfigureAwait(false);
        if (output.StderrFile is not null) stderr = ReadTail(output.StderrFile);
        return new CommandResult(exit, stdout, stderr);
    }

    private static string ReadTail(string file)
    {
        try { return File.ReadAllText(file); } catch (IOException) { return ""; }
    }

    /// <summary>Reads a pipe to its end on a thread of its own: blocking pipe reads on pool threads starve the pool
    /// on a 2-core host (a spawn then waits hundreds of ms for a thread).</summary>
    private static Task<string> ReadAllAsync(int fd)
    {
        if (fd < 0) return Task.FromResult("");
        return Task.Factory.StartNew(() =>
        {
            using var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, 1);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            return reader.ReadToEnd();
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static unsafe int Spawn(string path, IReadOnlyList<string> args, CommandOutput output, ref int outRead, ref int errRead)
    {
        var fa = stackalloc byte[Sys.SpawnStructSize];
        var attr = stackalloc byte[Sys.SpawnStructSize];
        var sigs = stackalloc byte[Sys.SpawnStructSize];
        int* outPipe = stackalloc int[2] { -1, -1 };
        int* errPipe = stackalloc int[2] { -1, -1 };
        var allocated = new List<IntPtr>();
        var dups = new List<int>();
        try
        {
            Sys.FileActionsInit(fa);
            Sys.SpawnAttrInit(attr);
            Sys.FileActionsAddOpen(fa, 0, "/dev/null", Sys.O_RDONLY, 0);
            ConnectOutput(fa, 1, output.StdoutFile, outPipe);
            ConnectOutput(fa, 2, output.StderrFile, errPipe);
            var extra = output.ExtraFiles ?? [];
            for (var i = 0; i < extra.Count; i++)
            {
                // Duplicate above the target range first: dup2(3, 3) would keep FD_CLOEXEC set.
                var high = Sys.FcntlDupCloexec(extra[i], 100);
                dups.Add(high);
                Sys.FileActionsAddDup2(fa, high, 3 + i);
            }
            Sys.SigEmptySet(sigs);
            Sys.SpawnAttrSetSigMask(attr, sigs);
            Sys.SigFillSet(sigs);
            Sys.SpawnAttrSetSigDefault(attr, sigs);
            Sys.SpawnAttrSetFlags(attr, (short)(Sys.POSIX_SPAWN_SETSIGMASK | Sys.POSIX_SPAWN_SETSIGDEF));

            var argv = stackalloc byte*[args.Count + 2];
            argv[0] = Utf8(path, allocated);
            for (var i = 0; i < args.Count; i++) argv[i + 1] = Utf8(args[i], allocated);
            argv[args.Count + 1] = null;

            var env = Environment.GetEnvironmentVariables();
            var envp = stackalloc byte*[env.Count + 1];
            var n = 0;
            foreach (DictionaryEntry e in env) envp[n++] = Utf8($"{e.Key}={e.Value}", allocated);
            envp[n] = null;

            int pid;
            var rc = Sys.PosixSpawn(&pid, argv[0], fa, attr, argv, envp);
            if (rc != 0) throw new LinuxException("posix_spawn", path, rc);
            outRead = outPipe[0];
            errRead = errPipe[0];
            outPipe[0] = errPipe[0] = -1;
            return pid;
        }
        finally
        {
            Sys.FileActionsDestroy(fa);
            Sys.SpawnAttrDestroy(attr);
            foreach (var fd in dups.Concat([outPipe[0], outPipe[1], errPipe[0], errPipe[1]]))
                if (fd >= 0) Sys.Close(fd);
            foreach (var p in allocated) Marshal.FreeHGlobal(p);
        }
    }

    private static unsafe void ConnectOutput(void* fa, int fd, string? file, int* pipe)
    {
        if (file is not null)
        {
            Sys.FileActionsAddOpen(fa, fd, file, Sys.O_WRONLY | Sys.O_CREAT | Sys.O_TRUNC, 0x180);
            return;
        }
        Sys.ThrowIfError(Sys.Pipe2(pipe, Sys.O_CLOEXEC), "pipe2");
        Sys.FileActionsAddDup2(fa, pipe[1], fd);
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
