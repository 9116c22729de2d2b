using System.Net.Sockets;
using Garden.Linux.Agent;

namespace Garden.Agent.Tests;

/// <summary>The client's failure modes without an agent.</summary>
public sealed class AgentClientTests
{
    [Fact]
    public async Task Missing_socket_is_agent_unavailable()
    {
        var client = new AgentConnector().Connect("/nonexistent/dir/agent.sock");
        var e = await Assert.ThrowsAsync<AgentUnavailableException>(() => client.PingAsync(CancellationToken.None));
        Assert.Equal("/nonexistent/dir/agent.sock", e.SocketPath);
    }

    [Fact]
    public async Task Socket_nobody_listens_on_is_agent_unavailable()
    {
        var dir = Directory.CreateTempSubdirectory("garden-agent-client-");
        try
        {
            string path = Path.Combine(dir.FullName, "agent.sock");
            using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
                s.Bind(new UnixDomainSocketEndPoint(path)); // bound, never listening: a dead agent's leftover
            var client = new AgentClient(path);
            await Assert.ThrowsAsync<AgentUnavailableException>(() => client.ListAsync(CancellationToken.None));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public async Task Agent_closing_without_an_answer_is_agent_unavailable()
    {
        var dir = Directory.CreateTempSubdirectory("garden-agent-client-");
        try
        {
            string path = Path.Combine(dir.FullName, "agent.sock");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen();
            var serve = Task.Run(async () =>
            {
                using var c = await listener.AcceptAsync();
                c.Close();
            });
            await Assert.ThrowsAsync<AgentUnavailableException>(() => new AgentClient(path).PingAsync(CancellationToken.None));
            await serve;
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
