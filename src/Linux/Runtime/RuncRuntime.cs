using System.Collections.Concurrent;
using System.Text.Json;
using Garden.Linux.Interop;
using Garden.Linux.Process;
using Tmds.Linux;

namespace Garden.Linux.Runtime;

/// <summary>IOciRuntime over the runc binary. `runc run -d` gets /dev/null and a file as its stdio:
/// its init inherits them, and a pipe would never see EOF. With <paramref name="agentSeccomp"/> an unprivileged
/// container's agent installs that compiled filter itself (<see cref="BundleSpec.AgentSeccomp"/>) and a pea's agent the
/// guard over runc's; without it runc compiles the profile for each container.</summary>
public sealed class RuncRuntime(string runc = "runc", string? root = null, AgentSeccompFilter? agentSeccomp = null) : IOciRuntime
{
    /// <summary>The file in the bundle that gets runc's stderr, which its init inherits: the agent's startup errors.</summary>
    public const string StartupLog = "runc-run.log";

    private readonly string runcPath = Command.Resolve(runc);

    // `runc run` execs runc from one sealed in-memory copy, so its init does not copy the binary again per container
    // (SealedExecutable says why that is safe); the other commands start no init and run the file.
    private SealedExecutable Sealed => SealedExecutable.For(runcPath);

    // Bundles of containers this instance started: their init pid is in the pid file, so kill and wait
    // need no runc invocation. Unknown ids (another daemon's) go through runc.
    private readonly ConcurrentDictionary<string, string> _bundles = new();

    private IEnumerable<string> Global()
    {
        if (root is not null) { yield return "--root"; yield return root; }
    }

    public async Task RunAsync(BundleSpec spec, string bundleDir, CancellationToken ct)
    {
        var id = spec.Handle;
        // the agent installs a program only when this runtime has one to hand over: the whole filter to a container's agent,
        // the socketcall guard to a pea's (OciBundle.AgentSeccomp says why)
        var (kind, program) = agentSeccomp switch
        {
            { File: { } whole } when spec.Join is null => (AgentSeccomp.Whole, whole),
            { Guard: { } guard } => (AgentSeccomp.Guard, guard),
            _ => (AgentSeccomp.None, (SafeFd?)null),
        };
        spec = spec with { AgentSeccomp = kind };
        OciBundle.Write(bundleDir, spec);
        using var listener = Sys.ListenUnix(spec.AgentSocketPath, backlog: 512);
        var cgroups = new List<SafeFd>();
        using var closeCgroups = new Disposables(cgroups);
        foreach (var dir in OciBundle.CgroupDirs(spec)) cgroups.Add(Sys.Open(dir, LibC.O_RDONLY | LibC.O_DIRECTORY));
        // gardend appends the agent's log here (it follows the agent over its socket); the agent gets no descriptor of it
        new FileStream(spec.AgentLogPath, new FileStreamOptions
        {
            Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }).Dispose();
        // runc's stdout and stderr, which its init inherits: the agent points them at /dev/null once it runs, so only its
        // startup errors land in this file
        var stderrFile = Path.Combine(bundleDir, StartupLog);
        // No --no-new-keyring: each container gets a session keyring of its own instead of sharing gardend's.
        var args = Global().Concat(["run", "--detach", "--preserve-fds", OciBundle.PreservedFds(spec).ToString(),
            "--bundle", bundleDir, "--pid-file", Path.Combine(bundleDir, "init.pid"), id]).ToList();
        SafeFd[] seccomp = OciBundle.AgentSeccompProgram(spec) ? [program!] : [];
        var output = new CommandOutput("/dev/null", stderrFile, [listener, .. cgroups, .. seccomp]);
        CommandResult result;
        using (var runc = Sealed.Take())
        {
            try
            {
                result = await Command.RunAsync(runc.ExecPath, runcPath, args, output, ct).ConfigureAwait(false);
            }
            catch (LinuxException e) when (runc.Sealed && e.Call == "posix_spawn")
            {
                // the copy was not exec'd (nothing ran): a security module or the kernel refuses memory files; the file then
                Sealed.ExecFailed(runc);
                result = await Command.RunAsync(runcPath, args, output, ct).ConfigureAwait(false);
            }
        }
        if (!result.Succeeded) throw new OciRuntimeException("run", id, LastLine(result.Stderr, result.ExitCode));
        _bundles[id] = bundleDir;
    }

    private sealed class Disposables(List<SafeFd> fds) : IDisposable
    {
        public void Dispose()
        {
            foreach (var fd in fds) fd.Dispose();
        }
    }

    /// <summary>A pidfd for the container's init, if this instance started it and it still runs
    /// (checked by its cgroup, so a reused pid is never signalled).</summary>
    private SafeFd? InitPidfd(string id) => InitPidfd(id, out _);

    private SafeFd? InitPidfd(string id, out int pid)
    {
        pid = 0;
        if (!_bundles.TryGetValue(id, out var bundle)) return null;
        try
        {
            pid = int.Parse(File.ReadAllText(Path.Combine(bundle, "init.pid")).Trim());
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            return null;
        }
        var pidfd = Sys.PidfdOpen(pid);
        if (pidfd is null) return null;
        try
        {
            // A pidfd of an exited (not yet reaped) init polls readable: that container does not run.
            if (!Sys.PollReadable(pidfd, 0, $"pidfd of {id}")
                && File.ReadLines($"/proc/{pid}/cgroup").Any(l => l.EndsWith("/" + id, StringComparison.Ordinal)
                                                                || l.Contains("/" + id + "/", StringComparison.Ordinal))) return pidfd;
        }
        catch (IOException)
        {
        }
        pidfd.Dispose();
        return null;
    }

    public void Adopt(string id, string bundleDir) => _bundles[id] = bundleDir;

    public async Task<OciState?> StateAsync(string id, CancellationToken ct)
    {
        // Fast path: the init we started (or adopted) is alive, so runc knows it as running.
        using (var pidfd = InitPidfd(id, out var pid))
            if (pidfd is not null) return new OciState(id, OciStatus.Running, pid, _bundles[id]);

        var result = await Command.RunAsync(runcPath, Global().Concat(["state", id]).ToList(), ct).ConfigureAwait(false);
        if (!result.Succeeded)
        {
            if (NotExist(result.Stderr)) return null;
            throw new OciRuntimeException("state", id, LastLine(result.Stderr, result.ExitCode));
        }
        using var doc = JsonDocument.Parse(result.Stdout);
        var r = doc.RootElement;
        var status = r.GetProperty("status").GetString() switch
        {
            "creating" => OciStatus.Creating,
            "created" => OciStatus.Created,
            "running" => OciStatus.Running,
            "paused" => OciStatus.Paused,
            _ => OciStatus.Stopped,
        };
        return new OciState(id, status, r.GetProperty("pid").GetInt32(), r.GetProperty("bundle").GetString() ?? "");
    }

    public async Task KillAsync(string id, int signal, bool all, CancellationToken ct)
    {
        if (!all)
        {
            using var pidfd = InitPidfd(id);
            if (pidfd is not null)
            {
                Sys.PidfdSendSignal(pidfd, signal);
                return;
            }
        }
        var args = Global().Concat(["kill"]).Concat(all ? ["--all"] : Array.Empty<string>()).Concat([id, signal.ToString()]).ToList();
        var result = await Command.RunAsync(runcPath, args, ct).ConfigureAwait(false);
        if (result.Succeeded || NotExist(result.Stderr) || result.Stderr.Contains("not running", StringComparison.OrdinalIgnoreCase)
            || result.Stderr.Contains("process already finished", StringComparison.OrdinalIgnoreCase))
            return;
        throw new OciRuntimeException("kill", id, LastLine(result.Stderr, result.ExitCode));
    }

    public async Task<bool> WaitStoppedAsync(string id, TimeSpan timeout, CancellationToken ct)
    {
        using var pidfd = InitPidfd(id) ?? await StatePidfd(id, ct).ConfigureAwait(false);
        if (pidfd is null) return true;
        return await Task.Factory.StartNew(() => Sys.PollReadable(pidfd, (int)timeout.TotalMilliseconds, $"pidfd of {id}"), ct,
            TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    private async Task<SafeFd?> StatePidfd(string id, CancellationToken ct)
    {
        var state = await StateAsync(id, ct).ConfigureAwait(false);
        if (state is null || state.Status == OciStatus.Stopped || state.Pid <= 0) return null;
        return Sys.PidfdOpen(state.Pid);
    }

    public async Task DeleteAsync(string id, CancellationToken ct)
    {
        var result = await Command.RunAsync(runcPath, Global().Concat(["delete", id]).ToList(), ct).ConfigureAwait(false);
        if (result.Succeeded || NotExist(result.Stderr))
        {
            _bundles.TryRemove(id, out _);
            return;
        }
        throw new OciRuntimeException("delete", id, LastLine(result.Stderr, result.ExitCode));
    }

    private static bool NotExist(string stderr) => stderr.Contains("does not exist", StringComparison.OrdinalIgnoreCase)
        || stderr.Contains("not exist", StringComparison.OrdinalIgnoreCase);

    private static string LastLine(string stderr, int exitCode)
    {
        var line = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        if (line is null) return $"exit status {exitCode}";
        // runc --log-format text lines look like: time="..." level=error msg="..."
        var msg = line.IndexOf("msg=\"", StringComparison.Ordinal);
        return msg >= 0 ? line[(msg + 5)..].TrimEnd('"') : line;
    }
}
