using System.Diagnostics;
using Garden.Actors;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;

namespace Garden.Host.Operations;

/// <summary>The agent connection, timed: every call to an agent reports its round trip (<see cref="IGardenMetrics.AgentCall"/>),
/// by call. A stream (spawn-attached, attach) is timed until the agent confirmed it, not for its life. The composition root
/// wraps the real <see cref="AgentConnector"/> in it; the actors see only <see cref="IAgentConnector"/>.</summary>
public sealed class TimedAgents(IAgentConnector inner, IGardenMetrics metrics) : IAgentConnector
{
    public IAgentClient Connect(string socketPath) => new TimedAgent(inner.Connect(socketPath), metrics);

    private sealed class TimedAgent(IAgentClient agent, IGardenMetrics metrics) : IAgentClient
    {
        public string SocketPath => agent.SocketPath;

        public Task<Pong> PingAsync(CancellationToken ct) => Time("ping", () => agent.PingAsync(ct));

        public Task<Spawned> SpawnAsync(SpawnRequest spec, CancellationToken ct) => Time("spawn", () => agent.SpawnAsync(spec, ct));

        public Task<IAgentStream> SpawnAttachedAsync(SpawnRequest spec, CancellationToken ct) =>
            Time("spawn", () => agent.SpawnAttachedAsync(spec, ct));

        public Task<IAgentStream> AttachAsync(string processId, ulong fromOffset, CancellationToken ct) =>
            Time("attach", () => agent.AttachAsync(processId, fromOffset, ct));

        public Task SignalAsync(string processId, int signal, CancellationToken ct) =>
            Time("signal", async () => { await agent.SignalAsync(processId, signal, ct); return true; });

        public Task SetTtyAsync(string processId, uint rows, uint cols, CancellationToken ct) =>
            Time("set-tty", async () => { await agent.SetTtyAsync(processId, rows, cols, ct); return true; });

        public Task SignalAllAsync(int signal, CancellationToken ct) =>
            Time("signal-all", async () => { await agent.SignalAllAsync(signal, ct); return true; });

        public Task<IReadOnlyList<ProcessEntry>> ListAsync(CancellationToken ct) => Time("list", () => agent.ListAsync(ct));

        // not timed: its time is how long nothing exited
        public Task<IReadOnlyList<ProcessEntry>> WaitExitsAsync(TimeSpan wait, CancellationToken ct) => agent.WaitExitsAsync(wait, ct);

        public IAsyncDisposable FollowLog(string logFile, Action<string>? problem = null) => agent.FollowLog(logFile, problem);

        private async Task<T> Time<T>(string call, Func<Task<T>> run)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                var result = await run();
                metrics.AgentCall(call, clock.Elapsed, failed: false);
                return result;
            }
            catch
            {
                metrics.AgentCall(call, clock.Elapsed, failed: true);
                throw;
            }
        }
    }
}
