using Garden.Linux.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>Things that change the agent itself (its oom_score_adj) or probe its security rule: their own agent.</summary>
public sealed class AgentIsolationTests(AgentFixture agent) : IClassFixture<AgentFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;
    private IAgentClient Client => agent.Client;

    private static string NewId(string name) => $"{name}-{Guid.NewGuid():N}"[..20];

    [InstallFact]
    /// <summary>Every child gets oom_score_adj 500 (native/spawn.c), whatever the agent has: not the daemon's protection,
    /// and, with the agent's own value untouched, the OOM killer prefers any process of the container to its agent.</summary>
    public async Task Children_get_oom_score_adj_500_whatever_the_agent_has()
    {
        string agentAdj = $"/proc/{agent.AgentHostPid}/oom_score_adj";
        // the daemon (with CAP_SYS_RESOURCE) gives agents a negative value; without that capability a test can only raise it
        string adj = "-900";
        try
        {
            await File.WriteAllTextAsync(agentAdj, adj);
        }
        catch (UnauthorizedAccessException)
        {
            adj = "200";
            await File.WriteAllTextAsync(agentAdj, adj);
        }
        Assert.Equal(adj, (await File.ReadAllTextAsync(agentAdj)).Trim());
        try
        {
            var r = await Client.RunAsync(Cmd(NewId("oom"), "cat", "/proc/self/oom_score_adj"));
            Assert.Equal("500\n", r.Stdout);

            var spec = Cmd(NewId("oomv"), "cat", "/proc/self/oom_score_adj");
            spec.User = "vcap";
            r = await Client.RunAsync(spec);
            Assert.Equal("500\n", r.Stdout);

            Assert.Equal(adj, (await File.ReadAllTextAsync(agentAdj)).Trim());
        }
        finally
        {
            try
            {
                await File.WriteAllTextAsync(agentAdj, "0");
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    [InstallFact]
    public async Task A_peer_inside_the_container_is_refused()
    {
        // busybox nc cannot speak AF_UNIX: a tiny static client does (connect, send a ping frame, report what came back)
        string src = Path.Combine(agent.Root, "tmp", "probe.c");
        await File.WriteAllTextAsync(src, ProbeSource);
        AgentFixture.Run("gcc", "-static", "-O1", "-o", Path.Combine(agent.Root, "bin", "agent-probe"), src);

        var r = await Client.RunAsync(Cmd(NewId("probe"), "/bin/agent-probe", "/.garden/run/agent.sock"));
        Assert.Equal("closed\n", r.Stdout);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("refused peer pid", agent.WaitForLog("refused peer pid"));

        // the same ping from outside the container is answered
        Assert.Equal(1, (await Client.PingAsync(None)).AgentPid);
    }

    [InstallFact]
    public async Task Sigterm_stops_the_agent()
    {
        // a throwaway agent, not the shared one
        using var other = new AgentFixture();
        Assert.Equal(1, (await other.Client.PingAsync(None)).AgentPid);
        AgentFixture.Run("kill", "-TERM", other.AgentHostPid.ToString());
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (Directory.Exists($"/proc/{other.AgentHostPid}") && !File.ReadAllText($"/proc/{other.AgentHostPid}/stat").Contains(") Z ")
               && DateTime.UtcNow < deadline)
            await Task.Delay(10);
        Assert.True(DateTime.UtcNow < deadline, "the agent did not exit on SIGTERM");
        await Assert.ThrowsAsync<AgentUnavailableException>(() => other.Client.PingAsync(None));
    }

    private const string ProbeSource = """
        #include <stdio.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <sys/un.h>
        #include <unistd.h>
        int main(int argc, char** argv) {
            int s = socket(AF_UNIX, SOCK_STREAM, 0);
            struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX;
            strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
            if (connect(s, (struct sockaddr*)&a, sizeof a) != 0) { printf("connect failed\n"); return 1; }
            unsigned char ping[] = {0, 0, 0, 2, 0x2a, 0x00}; /* AgentRequest{ping = {}} */
            unsigned char buf[256];
            ssize_t n = send(s, ping, sizeof ping, MSG_NOSIGNAL); /* the agent may have closed already */
            if (n > 0) n = read(s, buf, sizeof buf);
            printf(n > 0 ? "answered\n" : "closed\n");
            return 0;
        }
        """;
}
