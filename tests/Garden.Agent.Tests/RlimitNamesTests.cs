using Garden.Actors;

namespace Garden.Agent.Tests;

/// <summary>The daemon admits the rlimit names of <see cref="RlimitNames.Known"/>; the agent maps names to resource
/// numbers in its own table (it is AOT and must not reference Garden.Actors). The two lists must be the same, or a
/// name the daemon admits fails in the agent, or one the agent could set is refused.</summary>
public sealed class RlimitNamesTests
{
    [Fact]
    public void The_agent_knows_exactly_the_names_the_daemon_admits()
    {
        Assert.Equal(RlimitNames.Known.Order(), Rlimits.Names.Select(n => n.ToLowerInvariant()).Order());
        foreach (var name in RlimitNames.Known)
        {
            Assert.Equal(Rlimits.Resource(name), Rlimits.Resource("RLIMIT_" + name.ToUpperInvariant()));
            Assert.InRange(Rlimits.Resource(name), 0, 15); // RLIMIT_CPU .. RLIMIT_RTTIME
        }
        Assert.Equal(RlimitNames.Known.Length, RlimitNames.Known.Select(Rlimits.Resource).Distinct().Count());
    }
}
