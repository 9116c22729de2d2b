using System.Diagnostics;
using System.Text;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;

namespace Garden.Testing;

/// <summary>
/// Runs a garden-agent binary as PID 1 of a new pid + mount namespace, chrooted into a copy of a
/// rootfs (with proc, a private devpts and a few device nodes mounted inside the namespace). The test process stays
/// outside the pid namespace, as the daemon does. Like an ordinary container, the agent and its processes lack
/// CAP_SYS_PTRACE; its stderr is a host file at first (runc gives it its log), as in a container.
/// </summary>
public sealed class AgentSandbox : IDisposable
{
    private readonly Process _unshare;

    /// <summary>Starts <paramref name="bin"/> in a copy of <paramref name="rootfs"/> and waits until it answers Ping (as root:
    /// it takes unshare and mounts). The agent tests' fixture and the bench's agent probes run it.</summary>
    public AgentSandbox(string bin, string rootfs)
    {
        if (!Directory.Exists(Path.Combine(rootfs, "bin")))
            throw new InvalidOperationException($"rootfs {rootfs} missing: run scripts/make-rootfs.sh {TestPaths.InstalledRootfs}");

        Root = Directory.CreateTempSubdirectory("garden-agent-test-").FullName;
        Run("cp", "-a", rootfs + "/.", Root);
        Directory.CreateDirectory(Path.Combine(Root, ".garden", "run"));
        File.Copy(bin, Path.Combine(Root, ".garden", "agent"), overwrite: true);
        File.SetUnixFileMode(Path.Combine(Root, ".garden", "agent"), (UnixFileMode)0b111_101_101);
        SocketPath = Path.Combine(Root, ".garden", "run", "agent.sock");
        // on the host, as gardend keeps it: the agent's log comes over its socket (FollowLog)
        LogPath = Root + ".agent.log";
        StderrPath = Root + ".stderr";

        var script = new StringBuilder()
            .AppendLine("set -e")
            .AppendLine("R=\"$1\"")
            .AppendLine("mount -t proc proc \"$R/proc\"")
            .AppendLine("mount -t tmpfs -o mode=755 tmpfs \"$R/dev\"")
            .AppendLine("for n in null zero full random urandom tty; do touch \"$R/dev/$n\"; mount --bind /dev/$n \"$R/dev/$n\"; done")
            .AppendLine("mkdir \"$R/dev/pts\"")
            .AppendLine("mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts \"$R/dev/pts\"")
            .AppendLine("ln -s pts/ptmx \"$R/dev/ptmx\"")
            .AppendLine("exec setpriv --bounding-set -sys_ptrace -- chroot \"$R\" /.garden/agent </dev/null >/dev/null 2>>\"$R.stderr\"")
            .ToString();
        var psi = new ProcessStartInfo("unshare")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "sh", "-c", script, "sh", Root })
            psi.ArgumentList.Add(a);
        _unshare = Process.Start(psi)!;

        Client = new AgentClient(SocketPath);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            try
            {
                var pong = Client.PingAsync(CancellationToken.None).GetAwaiter().GetResult();
                if (pong.AgentPid != 1) throw new InvalidOperationException($"agent pid is {pong.AgentPid}, expected 1");
                break;
            }
            catch (AgentUnavailableException) when (DateTime.UtcNow < deadline && !_unshare.HasExited)
            {
                Thread.Sleep(20);
            }
            catch (AgentUnavailableException e)
            {
                string err = _unshare.HasExited ? _unshare.StandardError.ReadToEnd() : "";
                Dispose();
                throw new InvalidOperationException($"agent did not start: {e.Message} {err} log: {ReadLog()}", e);
            }
        }
        AgentHostPid = FindChild(_unshare.Id);
        _logFollower = Client.FollowLog(LogPath);
    }

    private IAsyncDisposable? _logFollower;

    /// <summary>Stops taking the agent's log (as when gardend is down); <see cref="FollowLog"/> takes it again.</summary>
    public async Task StopFollowingLogAsync()
    {
        if (_logFollower is { } f) await f.DisposeAsync();
        _logFollower = null;
    }

    public void FollowLog() => _logFollower ??= Client.FollowLog(LogPath);

    /// <summary>Waits until the agent's log (followed into <see cref="LogPath"/>) holds text; returns the log.</summary>
    public string WaitForLog(string text, int timeoutMs = 10_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (true)
        {
            var log = ReadLog();
            if (log.Contains(text, StringComparison.Ordinal) || DateTime.UtcNow >= deadline) return log;
            Thread.Sleep(20);
        }
    }

    public string Root { get; }

    public string SocketPath { get; }

    public string LogPath { get; }

    /// <summary>The host file the agent got as its stderr.</summary>
    public string StderrPath { get; }

    public AgentClient Client { get; }

    /// <summary>The agent's pid as the host sees it.</summary>
    public int AgentHostPid { get; }

    public string ReadLog()
    {
        try
        {
            return File.ReadAllText(LogPath);
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static int FindChild(int pid)
    {
        var text = File.ReadAllText($"/proc/{pid}/task/{pid}/children").Trim();
        return int.Parse(text.Split(' ')[0]);
    }

    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        return stdout;
    }

    public void Dispose()
    {
        try
        {
            _logFollower?.DisposeAsync().AsTask().Wait(5000);
        }
        catch (Exception)
        {
        }
        try
        {
            File.Delete(LogPath);
            File.Delete(StderrPath);
        }
        catch (Exception)
        {
        }
        try
        {
            if (!_unshare.HasExited)
            {
                // --kill-child: the agent (and with it the whole pid namespace) gets SIGKILL when unshare dies
                _unshare.Kill();
                _unshare.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        if (AgentHostPid > 0)
        {
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (Directory.Exists($"/proc/{AgentHostPid}") && DateTime.UtcNow < deadline) Thread.Sleep(10);
        }
        _unshare.Dispose();
        // the mounts lived in the namespace's private mount table and are gone with it
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (Exception)
        {
            try
            {
                Run("rm", "-rf", "--one-file-system", Root);
            }
            catch (Exception)
            {
            }
        }
    }
}

/// <summary>What a user sees of one run.</summary>
public sealed record RunResult(string Stdout, string Stderr, int ExitCode, int Signal, List<AgentEvent> Events)
{
    public string Output => Stdout + Stderr;
}

/// <summary>Runs processes through an agent as a client would, collecting what a user sees.</summary>
public static class AgentRuns
{
    public static SpawnRequest Cmd(string id, string path, params string[] args)
    {
        var s = new SpawnRequest { Id = id, Path = path };
        s.Args.AddRange(args);
        return s;
    }

    public static async Task<RunResult> RunAsync(this IAgentClient client, SpawnRequest spec, string? stdin = null, int timeoutSeconds = 30)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        if (stdin != null) spec.KeepStdin = true;
        await using var stream = await client.SpawnAttachedAsync(spec, cts.Token);
        if (stdin != null)
        {
            await stream.WriteStdinAsync(Encoding.UTF8.GetBytes(stdin), cts.Token);
            await stream.CloseStdinAsync(cts.Token);
        }
        return await stream.CollectAsync(cts.Token);
    }

    public static async Task<RunResult> CollectAsync(this IAgentStream stream, CancellationToken ct)
    {
        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        var events = new List<AgentEvent>();
        while (await stream.ReadAsync(ct) is { } ev)
        {
            events.Add(ev);
            if (ev.KindCase == AgentEvent.KindOneofCase.Output)
                (ev.Output.Stream == StreamKind.Stdout ? stdout : stderr).Write(ev.Output.Data.Span);
            if (ev.KindCase == AgentEvent.KindOneofCase.Exited)
                return new RunResult(Encoding.UTF8.GetString(stdout.ToArray()), Encoding.UTF8.GetString(stderr.ToArray()),
                    ev.Exited.ExitCode, ev.Exited.Signal, events);
        }
        throw new InvalidOperationException($"stream ended without Exited; stdout: {Encoding.UTF8.GetString(stdout.ToArray())}");
    }
}
