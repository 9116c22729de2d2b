using System.Diagnostics;
using System.Text;

namespace Garden.Testing;

public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
}

/// <summary>A real gardend on a temporary state dir and socket, driven through the real `garden` CLI.</summary>
public sealed class Gardend : IAsyncDisposable
{
    private Process? _process;
    private readonly StringBuilder _log = new();

    public string Dir { get; }
    public string StateDir => Path.Combine(Dir, "state");
    public string Socket => Path.Combine(Dir, "garden.sock");
    public string ConfigFile => Path.Combine(Dir, "gardend.conf");
    /// <summary>This instance's garden.mount-dir (container roots at MountDir/HANDLE/rootfs).</summary>
    public string MountDir => Path.Combine(Dir, "mounts");
    public string CgroupParent { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    /// <summary>The gardend.dll to run (another build for upgrade tests); default the current build.</summary>
    public string? DllPath { get; set; }

    /// <summary>The agent binary written into the config (another build for upgrade tests).</summary>
    public string? AgentPath { get; set; }

    /// <summary>More gardend flags (e.g. --akka-remote 127.0.0.1:PORT), after the ones every instance gets.</summary>
    public IReadOnlyList<string> ExtraArgs { get; set; } = [];

    /// <summary>Environment variables set for gardend (e.g. NOTIFY_SOCKET), besides the test process's own.</summary>
    public IReadOnlyDictionary<string, string> EnvironmentVariables { get; set; } = new Dictionary<string, string>();

    private static int _instances;

    /// <summary>This instance's network: its own name prefix ("te" + two characters), its own /24 of 10.252.0.0/16
    /// and its own 40 host ports, so instances running side by side never meet (the process id spreads two test
    /// processes apart). The leak check looks for "te*".</summary>
    public string NetworkPrefix { get; }
    public string NetworkPool { get; }
    public int PortPoolStart { get; }

    public Gardend(string extraConfig = "")
    {
        // traversable: container root (an unprivileged host uid) must reach its root under MountDir
        Dir = TestPaths.Traversable(TestPaths.NewTempDir("gardend"));
        CgroupParent = $"garden-test-{Path.GetFileName(Dir)[12..]}";
        var n = (Environment.ProcessId * 37 + Interlocked.Increment(ref _instances)) % 256;
        const string digits = "0123456789abcdefghijklmnopqrstuvwxyz";
        NetworkPrefix = $"te{digits[n / 36]}{digits[n % 36]}";
        NetworkPool = $"10.252.{n}.0/24";
        PortPoolStart = 42000 + n * 40;
        Configure(extraConfig);
    }

    /// <summary>The warm pool of every test daemon whose test sets none: GARDEN_TEST_WARM_POOL (to run a class with one), else 0,
    /// so a test sees only the containers it made and each daemon's start costs no more than it did.</summary>
    private static readonly int TestWarmPool = int.TryParse(Environment.GetEnvironmentVariable("GARDEN_TEST_WARM_POOL"), out var n) ? n : 0;

    /// <summary>Rewrites the config file; takes effect at the next start.</summary>
    public void Configure(string extraConfig)
    {
        File.WriteAllText(ConfigFile, $$"""
            garden {
              agent-binary = "{{AgentPath ?? TestPaths.AgentBinary}}"
              default-rootfs = "{{TestPaths.DefaultRootfs}}"
              mount-dir = "{{MountDir}}"
              cgroup-parent = "{{CgroupParent}}"
              stop-grace = 2s
              destroy-grace = 2s
              network {
                prefix = "{{NetworkPrefix}}"
                pool = "{{NetworkPool}}"
                port-pool { start = {{PortPoolStart}}, size = 40 }
              }
              warm-pool { size = {{TestWarmPool}} }
            }
            {{extraConfig}}
            """);
    }

    /// <summary>Starts gardend and waits until it answers ping.</summary>
    public async Task StartAsync()
    {
        Launch();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (_process!.HasExited) throw new InvalidOperationException($"gardend exited with {_process.ExitCode}:\n{Log}");
            if (File.Exists(Socket) && (await CliAsync("ping")).ExitCode == 0) return;
            await Task.Delay(50);
        }
        throw new TimeoutException($"gardend did not answer ping within 30s:\n{Log}");
    }

    /// <summary>Starts gardend and waits for it to exit on its own (a start that must fail); returns its exit code.</summary>
    public async Task<int> StartExpectingExitAsync()
    {
        Launch();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process!.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>Waits until gardend has died (after a fault point fired).</summary>
    public async Task WaitForExitAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await _process!.WaitForExitAsync(cts.Token);
    }

    private void Launch()
    {
        _process?.Dispose();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { DllPath ?? TestPaths.GardendDll, "--state-dir", StateDir, "--socket", Socket, "--config", ConfigFile })
            psi.ArgumentList.Add(a);
        foreach (var a in ExtraArgs) psi.ArgumentList.Add(a);
        foreach (var (k, v) in EnvironmentVariables) psi.Environment[k] = v;
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Pid => _process?.Id ?? 0;

    /// <summary>The exit code of the last start's gardend, once it has exited; null while it runs.</summary>
    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    /// <summary>True while the gardend process of the last start runs.</summary>
    public bool Running => _process is { HasExited: false };

    /// <summary>Runs `garden --socket S args...`, optionally feeding stdin; fails the test on timeout.</summary>
    public async Task<CliResult> CliAsync(string[] args, string? stdin = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(TestPaths.CliBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("--socket");
        psi.ArgumentList.Add(Socket);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(true);
            throw new TimeoutException($"garden {string.Join(' ', args)} did not finish in time; stdout so far: {await stdout}");
        }
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    public Task<CliResult> CliAsync(params string[] args) => CliAsync(args, null);

    /// <summary>Starts a CLI process the test controls (to kill it mid-stream).</summary>
    public Process StartCli(params string[] args)
    {
        var psi = new ProcessStartInfo(TestPaths.CliBinary)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add("--socket");
        psi.ArgumentList.Add(Socket);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    public async Task StopAsync(bool kill = false)
    {
        if (_process is null || _process.HasExited) return;
        if (kill) _process.Kill();
        else Process.Start("kill", ["-TERM", _process.Id.ToString()])!.WaitForExit();
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process?.Dispose();
        // GARDEN_TEST_LOG_DIR=DIR keeps every test daemon's log there (DIR/<its dir name>.log), to read after a run
        if (Environment.GetEnvironmentVariable("GARDEN_TEST_LOG_DIR") is { Length: > 0 } logs)
            File.WriteAllText(Path.Combine(logs, Path.GetFileName(Dir) + ".log"), Log);
        // Never recurse into what gardend left mounted (a container's root, its disk, a bind mount of a host directory):
        // the leak check reports it instead.
        if (File.ReadLines("/proc/self/mountinfo").Any(l => l.Contains($" {Dir}/", StringComparison.Ordinal))) return;
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
