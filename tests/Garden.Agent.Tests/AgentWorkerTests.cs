using Garden.Linux.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>The agent's worker threads (Workers.cs): a container's first process finds its threads (stdout and stderr
/// readers, stdin writer) started, idle, once the agent has answered its first Ping (the Create's readiness check); those
/// threads are the agent's own, never a process the container sees. Each test gets its own agent: the workers are started
/// once per agent.</summary>
public sealed class AgentWorkerTests : IDisposable
{
    private readonly AgentFixture _agent = new();
    private IAgentClient Client => _agent.Client;

    public void Dispose() => _agent.Dispose();

    /// <summary>The thread ids of the agent's threads named "worker".</summary>
    private HashSet<int> WorkerThreads() =>
        Directory.GetDirectories($"/proc/{_agent.AgentHostPid}/task")
            .Where(t => ReadOr(Path.Combine(t, "comm")).Trim() == "worker")
            .Select(t => int.Parse(Path.GetFileName(t)))
            .ToHashSet();

    /// <summary>The thread ids of the agent's threads named <paramref name="comm"/>.</summary>
    private HashSet<int> Threads(string comm) =>
        Directory.GetDirectories($"/proc/{_agent.AgentHostPid}/task")
            .Where(t => ReadOr(Path.Combine(t, "comm")).Trim() == comm)
            .Select(t => int.Parse(Path.GetFileName(t)))
            .ToHashSet();

    private static string ReadOr(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
    }

    private static IEnumerable<int> Children(int pid) =>
        Directory.GetDirectories($"/proc/{pid}/task")
            .SelectMany(t => ReadOr(Path.Combine(t, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(int.Parse);

    /// <summary>Every Run arms a timer in the agent (gardend's timed wait for exits, the safety net of an exit whose
    /// output is still open); the runtime's timer thread is started once the first Ping is answered, not by the first Run.</summary>
    [InstallFact]
    public async Task The_timer_thread_runs_before_the_first_process_and_the_first_process_starts_none()
    {
        _agent.WaitForLog("idle workers and the timer thread started for the first process");
        var timer = Threads(".NET Timer");
        for (var i = 0; i < 50 && timer.Count == 0; i++)
        {
            await Task.Delay(20); // the timer thread names itself once it runs
            timer = Threads(".NET Timer");
        }
        Assert.Single(timer);

        // an attached process with its output open at its exit (a background child holds it a moment), and a wait for exits
        var r = await Client.RunAsync(Cmd("first", "sh", "-c", "(sleep 0.2) & echo out"));
        Assert.Equal(0, r.ExitCode);
        await Client.WaitExitsAsync(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        Assert.Equal(timer, Threads(".NET Timer"));
    }

    [InstallFact]
    public async Task The_first_process_runs_on_workers_started_after_the_first_Ping_and_they_are_no_process_of_the_container()
    {
        // the sandbox waited for the agent's Pong: the workers are started right after it
        _agent.WaitForLog("3 idle workers and the timer thread started for the first process, users read");
        var idle = WorkerThreads();
        Assert.Equal(3, idle.Count);
        // threads of the agent, not processes: its only child is the spawner, and the container's /proc lists no more
        Assert.Equal(["garden-spawner"], Children(_agent.AgentHostPid).Select(p => ReadOr($"/proc/{p}/comm").Trim()).ToArray());

        // the first process, attached with stdin (all three workers): inside, the agent, the spawner and this shell
        var r = await Client.RunAsync(Cmd("first", "sh", "-c", "cat >/dev/null; for p in /proc/[0-9]*; do cat $p/comm; done"), stdin: "in");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(["garden-init", "garden-spawner", "sh"], r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToArray());

        // it ran on those workers: no worker thread was started for it, and they wait again for the next one
        var after = WorkerThreads();
        Assert.Subset(idle, after);
        Assert.Equal(3, after.Count);

        // once per agent: a second Ping starts none
        await Client.PingAsync(CancellationToken.None);
        await Client.PingAsync(CancellationToken.None);
        Assert.Single(_agent.ReadLog().Split('\n'), l => l.Contains("idle workers and the timer thread started"));
        Assert.Equal(3, WorkerThreads().Count);
    }
}
