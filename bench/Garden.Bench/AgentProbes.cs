using System.Diagnostics;
using System.Text.Json.Nodes;
using Garden.Protocol.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

/// <summary>The agent alone, over its socket (no gardend, no runc): the latency of a spawn with its exit code, and the
/// output throughput. Probes, not tests: they were in the agent tests, where they printed figures and asserted nothing
/// about them; this machine is shared and noisy, so speed is reported here and compared by eye, run to run.</summary>
internal static class AgentProbes
{
    public static async Task<JsonObject> RunAsync(string agentBinary, string rootfs)
    {
        using var agent = new AgentSandbox(agentBinary, rootfs);
        var client = agent.Client;

        for (var i = 0; i < 20; i++) await client.RunAsync(Cmd($"warm-{i}", "/bin/true"));
        var times = new List<double>();
        for (var i = 0; i < 200; i++)
        {
            var sw = Stopwatch.StartNew();
            var r = await client.RunAsync(Cmd($"lat-{i}", "/bin/true"));
            sw.Stop();
            if (r.ExitCode != 0) throw new InvalidOperationException($"/bin/true exited {r.ExitCode}: {r.Output}");
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        double p50 = times[times.Count / 2], p90 = times[times.Count * 9 / 10];

        const long bytes = 512L * 1024 * 1024;
        using var cts = new CancellationTokenSource(120_000);
        var clock = Stopwatch.StartNew();
        long got = 0;
        Exited? exit = null;
        await using (var s = await client.SpawnAttachedAsync(Cmd("thr", "dd", "if=/dev/zero", "bs=65536", $"count={bytes / 65536}"), cts.Token))
            while (await s.ReadAsync(cts.Token) is { } ev)
            {
                if (ev.KindCase == AgentEvent.KindOneofCase.Output && ev.Output.Stream == StreamKind.Stdout) got += ev.Output.Data.Length;
                if (ev.KindCase == AgentEvent.KindOneofCase.Exited) exit = ev.Exited;
            }
        clock.Stop();
        if (got != bytes || exit?.ExitCode != 0) throw new InvalidOperationException($"dd: {got} of {bytes} bytes, exit {exit?.ExitCode}");
        var mbps = bytes / 1e6 / clock.Elapsed.TotalSeconds;

        Console.WriteLine($"agent: spawn /bin/true + exit code over the socket p50 {p50:F2} ms, p90 {p90:F2} ms, min {times[0]:F2} ms; " +
                          $"output {mbps:F0} MB/s ({bytes >> 20} MiB in {clock.Elapsed.TotalMilliseconds:F0} ms)");
        return new JsonObject
        {
            ["spawn_p50_ms"] = Math.Round(p50, 3), ["spawn_p90_ms"] = Math.Round(p90, 3), ["spawn_min_ms"] = Math.Round(times[0], 3),
            ["output_mb_per_s"] = Math.Round(mbps, 0),
        };
    }
}
