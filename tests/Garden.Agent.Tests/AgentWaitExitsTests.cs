using System.Diagnostics;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>WaitExits: the held connection gardend's exit watch waits on instead of polling List.</summary>
public sealed class AgentWaitExitsTests(AgentFixture agent) : IClassFixture<AgentFixture>
{
    private static readonly CancellationToken None = CancellationToken.None;
    private IAgentClient Client => agent.Client;

    private static string NewId(string name) => $"{name}-{Guid.NewGuid():N}"[..20];

    /// <summary>What earlier tests started has exited (a killed process's exit comes a little after the signal), and every
    /// exit is reported now (a List reports what it carries): no earlier exit answers this test's wait.</summary>
    private async Task Settle()
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((await Client.ListAsync(None)).Any(p => !p.Exited) && DateTime.UtcNow < until) await Task.Delay(20);
        await Client.ListAsync(None);
    }

    [InstallFact]
    public async Task A_wait_is_answered_as_soon_as_a_detached_process_exits()
    {
        await Settle();
        var id = NewId("exits");
        await Client.SpawnAsync(Cmd(id, "sleep", "0.4"), None);
        var sw = Stopwatch.StartNew();
        // a process an earlier test left running may exit first: that answer is for it, and the next wait is asked
        var list = await Client.WaitExitsAsync(TimeSpan.FromSeconds(30), None);
        while (!list.Single(p => p.Id == id).Exited && sw.Elapsed < TimeSpan.FromSeconds(10))
            list = await Client.WaitExitsAsync(TimeSpan.FromSeconds(30), None);
        sw.Stop();
        var e = Assert.Single(list, p => p.Id == id);
        Assert.True(e.Exited);
        Assert.Equal(0, e.Exit.ExitCode);
        Assert.False(e.ExitReported);
        Assert.InRange(sw.ElapsedMilliseconds, 250, 5_000); // it waited for the exit, not for its timeout
        // that answer reported it: the next wait does not answer for it again
        sw.Restart();
        var again = await Client.WaitExitsAsync(TimeSpan.FromMilliseconds(400), None);
        Assert.True(sw.ElapsedMilliseconds >= 350, $"answered after {sw.ElapsedMilliseconds} ms for an exit already reported");
        Assert.True(Assert.Single(again, p => p.Id == id).ExitReported);
    }

    [InstallFact]
    public async Task A_wait_is_answered_at_once_when_an_unreported_exit_is_already_there()
    {
        await Settle();
        var id = NewId("done");
        await Client.SpawnAsync(Cmd(id, "sh", "-c", "exit 5"), None);
        await Task.Delay(500); // it has exited; nobody asked
        var sw = Stopwatch.StartNew();
        var list = await Client.WaitExitsAsync(TimeSpan.FromSeconds(30), None);
        Assert.InRange(sw.ElapsedMilliseconds, 0, 1_000);
        var e = Assert.Single(list, p => p.Id == id);
        Assert.True(e.Exited);
        Assert.Equal(5, e.Exit.ExitCode);
    }

    [InstallFact]
    public async Task A_wait_with_nothing_exiting_is_answered_at_its_timeout_with_the_list()
    {
        await Settle();
        var id = NewId("runs");
        await Client.SpawnAsync(Cmd(id, "sleep", "100"), None);
        try
        {
            var sw = Stopwatch.StartNew();
            var list = await Client.WaitExitsAsync(TimeSpan.FromMilliseconds(500), None);
            Assert.InRange(sw.ElapsedMilliseconds, 450, 3_000);
            Assert.False(Assert.Single(list, p => p.Id == id).Exited);
        }
        finally
        {
            await Client.SignalAsync(id, 9, None);
        }
    }

    [InstallFact]
    public async Task A_daemon_that_gives_up_a_wait_leaves_the_agent_serving_and_the_exit_unreported()
    {
        await Settle();
        using var cts = new CancellationTokenSource(300);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.WaitExitsAsync(TimeSpan.FromSeconds(30), cts.Token));
        var id = NewId("later");
        await Client.SpawnAsync(Cmd(id, "true"), None);
        await Task.Delay(300);
        // the abandoned wait did not take the exit with it: the next one gets it at once
        var sw = Stopwatch.StartNew();
        var list = await Client.WaitExitsAsync(TimeSpan.FromSeconds(30), None);
        Assert.InRange(sw.ElapsedMilliseconds, 0, 1_000);
        Assert.False(Assert.Single(list, p => p.Id == id).ExitReported);
    }
}
