using Garden.Linux.Agent;
using Garden.Testing;

namespace Garden.Agent.Tests;

/// <summary>The published garden-agent (out/bin, or $GARDEN_AGENT_BIN) as PID 1 of a throwaway pid + mount namespace in a
/// copy of the default rootfs (<see cref="AgentSandbox"/>), shared by the tests of a class. Where the machine lacks root or
/// an install those tests are skipped ([InstallFact]), and nothing is started.</summary>
public sealed class AgentFixture : IDisposable
{
    private readonly AgentSandbox? _sandbox = Gate.Unmet(Needs.Root | Needs.Install) is null
        ? new AgentSandbox(TestPaths.AgentBinary, Environment.GetEnvironmentVariable("GARDEN_ROOTFS") ?? TestPaths.DefaultRootfs)
        : null;

    private AgentSandbox Sandbox => _sandbox ?? throw new InvalidOperationException(Gate.Unmet(Needs.Root | Needs.Install));

    public string Root => Sandbox.Root;
    public string SocketPath => Sandbox.SocketPath;
    public string LogPath => Sandbox.LogPath;
    public string StderrPath => Sandbox.StderrPath;
    public AgentClient Client => Sandbox.Client;
    public int AgentHostPid => Sandbox.AgentHostPid;
    public string ReadLog() => Sandbox.ReadLog();
    public string WaitForLog(string text, int timeoutMs = 10_000) => Sandbox.WaitForLog(text, timeoutMs);
    public Task StopFollowingLogAsync() => Sandbox.StopFollowingLogAsync();
    public void FollowLog() => Sandbox.FollowLog();

    public static string FindAgentBinary() => TestPaths.AgentBinary;

    public static string Run(string file, params string[] args) => AgentSandbox.Run(file, args);

    public void Dispose() => _sandbox?.Dispose();
}
