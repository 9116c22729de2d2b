using Garden.Linux.Interop;
using Garden.Linux.UserNamespaces;
using Garden.Testing;
using Tmds.Linux;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>Holders started ahead (<c>garden.user-namespace.spares</c>): a Create takes one and writes the mapping it
/// asks for; one that died while it waited is never handed out (its pid would name nothing, or, once reaped, another
/// process); the spares end with their owner.</summary>
public sealed class UserNamespaceSpareTests
{
    private static string UidMap(int pid) =>
        string.Join(" | ", File.ReadLines($"/proc/{pid}/uid_map").Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))));

    /// <summary>Whether pid is a live (not zombie) ns-holder.</summary>
    private static bool IsHolder(int pid)
    {
        try
        {
            var args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return args.Length > 1 && args[1] == HolderUserNamespaces.HolderCommand && stat[(stat.LastIndexOf(')') + 2)] != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task UntilSpares(HolderUserNamespaces namespaces, int n)
    {
        for (var waited = 0; namespaces.SparesReady < n; waited += 20)
        {
            Assert.True(waited < 10_000, $"{namespaces.SparesReady} spares after 10 s, expected {n}");
            await Task.Delay(20);
        }
    }

    [InstallFact] // the holder is the agent binary
    public async Task A_create_takes_a_spare_and_writes_its_own_mapping_and_a_dead_spare_is_not_handed_out()
    {
        var namespaces = new HolderUserNamespaces(TestPaths.AgentBinary, spares: 2);
        var seen = new List<int>();
        try
        {
            // the first Create starts its own holder; the spares come once it lets that go
            var first = await namespaces.CreateAsync("a", IdMapping.Garden, default);
            Assert.Equal(0, namespaces.SparesReady);
            await first.DisposeAsync();
            await UntilSpares(namespaces, 2);
            var spares = namespaces.SparePids.ToList();
            seen.AddRange(spares);
            Assert.DoesNotContain(first.Pid, spares);
            // a spare waits with its maps unwritten until a Create takes it
            foreach (var pid in spares)
            {
                Assert.True(IsHolder(pid), $"{pid}");
                Assert.Equal("", UidMap(pid));
            }

            // the next Create gets a spare, with the mapping it asked for (not Garden's)
            var mapping = IdMapping.PerContainer(0x7ffe_0000);
            await using (var taken = await namespaces.CreateAsync("b", mapping, default))
            {
                Assert.Equal(spares[0], taken.Pid);
                Assert.Equal(mapping, taken.Mapping);
                Assert.Equal($"0 {0x7ffe_0000} 65536", UidMap(taken.Pid));
                Assert.True(NamespaceOwners.InBlock(taken.Owner));
                using var fd = Sys.Open(taken.UserNamespacePath, LibC.O_RDONLY);
                Assert.Equal(taken.Owner, Sys.UserNamespaceOwner(fd, taken.UserNamespacePath));
                Assert.Equal(1, namespaces.SparesReady); // topped up only when the Create lets it go
            }
            await UntilSpares(namespaces, 2);

            // a spare killed while it waits: no Create gets it
            var victim = namespaces.SparePids[0];
            seen.AddRange(namespaces.SparePids);
            Assert.Equal(0, LibC.kill(victim, LibC.SIGKILL));
            // at once once it has let its namespaces go (an exiting process does that before it is a zombie): not reaped
            // yet, or reaped, it is not handed out either way
            for (var i = 0; i < 2000 && File.Exists($"/proc/{victim}/ns/net"); i++) await Task.Delay(1);
            Assert.False(IsHolder(victim));
            await using (var c = await namespaces.CreateAsync("c", IdMapping.Garden, default))
            await using (var d = await namespaces.CreateAsync("d", IdMapping.Garden, default))
            {
                Assert.NotEqual(victim, c.Pid);
                Assert.NotEqual(victim, d.Pid);
                Assert.Equal("0 4294967294 1 | 1 1 4294967293", UidMap(c.Pid));
                Assert.Equal("0 4294967294 1 | 1 1 4294967293", UidMap(d.Pid));
            }
            await UntilSpares(namespaces, 2);
            seen.AddRange(namespaces.SparePids);
        }
        finally
        {
            await namespaces.DisposeAsync();
        }
        // the spares end with their owner
        for (var i = 0; i < 200 && seen.Any(IsHolder); i++) await Task.Delay(10);
        Assert.DoesNotContain(seen, IsHolder);
        Assert.Equal(0, namespaces.SparesReady);
    }

    [InstallFact]
    public async Task Without_spares_no_holder_waits()
    {
        var namespaces = new HolderUserNamespaces(TestPaths.AgentBinary, spares: 0);
        var holder = await namespaces.CreateAsync("a", IdMapping.Garden, default);
        var pid = holder.Pid;
        await holder.DisposeAsync();
        await Task.Delay(200);
        Assert.Equal(0, namespaces.SparesReady);
        Assert.False(IsHolder(pid));
    }
}
