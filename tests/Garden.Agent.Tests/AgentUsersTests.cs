using Garden.Linux.Agent;
using Garden.Testing;
using static Garden.Testing.AgentRuns;

namespace Garden.Agent.Tests;

/// <summary>The agent keeps what it parsed of /etc/passwd and /etc/group while the files stay the same (Users.cs): every
/// change the container makes to them is still seen by the next process, however it is made. Its own agent: the test
/// edits the sandbox's /etc/passwd.</summary>
public sealed class AgentUsersTests : IDisposable
{
    private readonly AgentFixture _agent = new();
    private IAgentClient Client => _agent.Client;

    public void Dispose() => _agent.Dispose();

    private async Task<string> IdAs(string user)
    {
        var spec = Cmd($"id-{Guid.NewGuid():N}"[..20], "sh", "-c", "echo $(id -u):$(id -g)");
        spec.User = user;
        var r = await Client.RunAsync(spec);
        Assert.True(r.ExitCode == 0, r.Output);
        return r.Stdout.Trim();
    }

    private async Task Sh(string script)
    {
        var r = await Client.RunAsync(Cmd($"sh-{Guid.NewGuid():N}"[..20], "sh", "-c", script));
        Assert.True(r.ExitCode == 0, r.Output);
    }

    [InstallFact]
    public async Task A_user_added_changed_in_place_or_replaced_is_seen_by_the_next_process()
    {
        Assert.Equal("0:0", await IdAs(""));
        // appended: the file grows
        await Sh("echo 'fresh:x:4242:4242::/:/bin/sh' >> /etc/passwd");
        Assert.Equal("4242:4242", await IdAs("fresh"));

        // old enough to be kept (an edit within the timestamps' granularity of the last read is never trusted to show)
        await Task.Delay(2500);
        Assert.Equal("4242:4242", await IdAs("fresh"));
        Assert.Equal("4242:4242", await IdAs("fresh"));
        // rewritten in place to the same size (same inode, same length: only its times differ)
        await Sh("sed 's/:4242:4242:/:4343:4343:/' /etc/passwd > /tmp/p && cat /tmp/p > /etc/passwd");
        Assert.Equal("4343:4343", await IdAs("fresh"));
        // and again at once, twice in a row
        await Sh("sed 's/:4343:4343:/:4444:4444:/' /etc/passwd > /tmp/p && cat /tmp/p > /etc/passwd");
        Assert.Equal("4444:4444", await IdAs("fresh"));
        await Sh("sed 's/:4444:4444:/:4545:4545:/' /etc/passwd > /tmp/p && cat /tmp/p > /etc/passwd");
        Assert.Equal("4545:4545", await IdAs("fresh"));

        // replaced by another file (a new inode), and a group given through /etc/group
        await Task.Delay(2500);
        Assert.Equal("4545:4545", await IdAs("fresh"));
        await Sh("sed 's/^fresh:.*$/fresh:x:4646:4646::\\/:\\/bin\\/sh/' /etc/passwd > /etc/passwd.new && mv /etc/passwd.new /etc/passwd && echo 'crew:x:4747:' >> /etc/group");
        Assert.Equal("4646:4747", await IdAs("fresh:crew"));
        // gone again: a name that is no longer there is refused
        await Sh("grep -v '^fresh:' /etc/passwd > /etc/passwd.new && mv /etc/passwd.new /etc/passwd");
        var spec = Cmd("gone", "sh", "-c", "id -u");
        spec.User = "fresh";
        var e = await Assert.ThrowsAsync<AgentException>(() => Client.RunAsync(spec));
        Assert.Contains("no such user", e.Message);
    }
}
