using System.Diagnostics;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Xunit.Abstractions;
using static Garden.Agent.Tests.AgentTestExtensions;

namespace Garden.Agent.Tests;

/// <summary>Many runs and a large output over the socket work; the figures go to the test output only (speed is measured
/// in bench/, side by side with runc, never asserted here: this machine is shared and noisy).</summary>
public sealed class AgentPerformanceTests(AgentFixture agent, ITestOutputHelper output) : IClassFixture<AgentFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;
    private IAgentClient Client => agent.Client;

    [Fact]
    public async Task Spawn_true_round_trip_latency()
    {
        for (int i = 0; i < 20; i++) await Client.RunAsync(Cmd($"warm-{i}", "/bin/true"));
        var times = new List<double>();
        for (int i = 0; i < 200; i++)
        {
            var sw = Stopwatch.StartNew();
            var r = await Client.RunAsync(Cmd($"lat-{i}", "/bin/true"));
            sw.Stop();
            Assert.Equal(0, r.ExitCode);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        double p50 = times[times.Count / 2], p90 = times[times.Count * 9 / 10];
        output.WriteLine($"spawn /bin/true + exit code over the socket: p50 {p50:F2} ms, p90 {p90:F2} ms, min {times[0]:F2} ms");
    }

    [Fact]
    public async Task Output_throughput()
    {
        const long bytes = 512L * 1024 * 1024;
        using var cts = new CancellationTokenSource(120_000);
        var sw = Stopwatch.StartNew();
        await using var s = await Client.SpawnAttachedAsync(Cmd("thr", "dd", "if=/dev/zero", "bs=65536", $"count={bytes / 65536}"), cts.Token);
        long got = 0;
        Exited? exit = null;
        while (await s.ReadAsync(cts.Token) is { } ev)
        {
            if (ev.KindCase == AgentEvent.KindOneofCase.Output && ev.Output.Stream == StreamKind.Stdout) got += ev.Output.Data.Length;
            if (ev.KindCase == AgentEvent.KindOneofCase.Exited) exit = ev.Exited;
        }
        sw.Stop();
        Assert.Equal(bytes, got);
        Assert.Equal(0, exit!.ExitCode);
        double mbps = bytes / 1e6 / sw.Elapsed.TotalSeconds;
        output.WriteLine($"output throughput: {mbps:F0} MB/s ({bytes >> 20} MiB in {sw.Elapsed.TotalMilliseconds:F0} ms)");
    }
}
