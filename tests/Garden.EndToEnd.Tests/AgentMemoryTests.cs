using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>
/// What a container's agent costs the host, and that its own runtime settings stay its own (issue 13, density). The agent's
/// GC settings are compiled into it (src/Agent/Garden.Agent.csproj), not put in its environment: a user's process never
/// sees a DOTNET_* variable it was not given, and a .NET knob the user gives the container's processes (a heap limit, say)
/// never reaches the agent, nor Garden's file tools (the agent's binary), which serve the container's file transfers and
/// output with their own settings.
/// </summary>
public sealed class AgentMemoryTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private async Task<string> Create(string prefix, params string[] flags)
    {
        var h = $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];
        var r = await D.CliAsync(["create", "--handle", h, .. flags]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    /// <summary>The agent's pid on the host (runc's pid file in the container's bundle).</summary>
    private int AgentHostPid(string h) => int.Parse(File.ReadAllText(Path.Combine(D.StateDir, "depot", h, "bundle", "init.pid")).Trim());

    private static long KiB(string file, string field) =>
        long.Parse(File.ReadLines(file).First(l => l.StartsWith(field, StringComparison.Ordinal))[field.Length..].Trim().Split(' ')[0]);

    private static string[] DotnetVariables(string environ) =>
        [.. environ.Split(['\0', '\n'], StringSplitOptions.RemoveEmptyEntries).Where(e => e.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase))];

    [InstallFact]
    public async Task A_users_processes_never_see_the_agents_DOTNET_variables_and_the_containers_own_never_reach_the_agent()
    {
        var plain = await Create("envp");
        // a heap limit of 1 MiB for the user's .NET processes: were it the agent's, an 8 MB output would be beyond it
        var knob = await Create("envk", "--env", "DOTNET_GCHeapHardLimit=100000", "--env", "KEPT=yes");
        try
        {
            var env = await D.CliAsync("run", plain, "--", "env");
            Assert.True(env.ExitCode == 0, env.ToString());
            Assert.Empty(DotnetVariables(env.Stdout));

            env = await D.CliAsync("run", knob, "--", "env");
            Assert.True(env.ExitCode == 0, env.ToString());
            Assert.Equal(["DOTNET_GCHeapHardLimit=100000"], DotnetVariables(env.Stdout));
            Assert.Contains("KEPT=yes", env.Stdout.Split('\n'));

            // the agent itself: no DOTNET_* in its environment (read on the host: in the container it is not dumpable),
            // the container's other variables there as before
            foreach (var h in new[] { plain, knob })
            {
                var environ = File.ReadAllText($"/proc/{AgentHostPid(h)}/environ");
                Assert.Empty(DotnetVariables(environ));
            }
            Assert.Contains("KEPT=yes", File.ReadAllText($"/proc/{AgentHostPid(knob)}/environ").Split('\0'));

            // and it streams 8 MB of output whole, as it would without the user's knob
            var big = await D.CliAsync("run", knob, "--", "sh", "-c", "head -c 8000000 /dev/zero");
            Assert.True(big.ExitCode == 0, $"exit {big.ExitCode}: {big.Stderr}");
            Assert.Equal(8_000_000, big.Stdout.Length);

            // the file tools are the agent's binary too: the user's heap limit does not fail a transfer (it did: the tools
            // got the container's environment and died at start under a 1 MiB heap)
            var tar = new MemoryStream();
            using (var w = new System.Formats.Tar.TarWriter(tar, System.Formats.Tar.TarEntryFormat.Ustar, leaveOpen: true))
                w.WriteEntry(new System.Formats.Tar.UstarTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "hello")
                    { DataStream = new MemoryStream("hi\n"u8.ToArray()) });
            var streamIn = await D.CliAsync(["stream-in", knob, "/dst"], System.Text.Encoding.ASCII.GetString(tar.ToArray()));
            Assert.True(streamIn.ExitCode == 0, streamIn.ToString());
            Assert.Equal("hi\n", (await D.CliAsync("run", knob, "--", "cat", "/dst/hello")).Stdout);
            var streamOut = await D.CliAsync("stream-out", knob, "/dst");
            Assert.True(streamOut.ExitCode == 0, $"exit {streamOut.ExitCode}: {streamOut.Stderr}");
            Assert.Contains("hello", streamOut.Stdout);
        }
        finally
        {
            await D.CliAsync("destroy", plain);
            await D.CliAsync("destroy", knob);
        }
    }

    /// <summary>A container's agent is every container's overhead: after it streamed a large output it gives the memory of
    /// that stream back once it is quiet (it stayed at ~7 MiB of anonymous memory after 4 MB of output before), and an idle
    /// agent stays small.</summary>
    [InstallFact]
    public async Task After_a_large_output_the_agent_gives_its_memory_back_once_quiet()
    {
        var h = await Create("agmem");
        try
        {
            var pid = AgentHostPid(h);
            var big = await D.CliAsync("run", h, "--", "sh", "-c", "head -c 8000000 /dev/zero");
            Assert.True(big.ExitCode == 0, $"exit {big.ExitCode}: {big.Stderr}");
            Assert.Equal(8_000_000, big.Stdout.Length);

            var deadline = DateTime.UtcNow.AddSeconds(15);
            long anon;
            while ((anon = KiB($"/proc/{pid}/smaps_rollup", "Anonymous:")) >= 2048 && DateTime.UtcNow < deadline) await Task.Delay(250);
            Assert.True(anon < 2048, $"the agent holds {anon} KiB of anonymous memory 15 s after the stream");

            // and it still serves at once
            var echo = await D.CliAsync("run", h, "--", "echo", "still here");
            Assert.Equal("still here\n", echo.Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }
}
