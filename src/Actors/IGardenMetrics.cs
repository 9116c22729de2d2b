using System.Collections.Immutable;

namespace Garden.Actors;

/// <summary>What the daemon tells its metrics, at the place each thing happens: the actors (journal writes, containers by
/// state, a finished recovery, an OOM kill), the API core (each operation) and the agent connection (each call's round
/// trip). The composition root gives gardend's Prometheus registry (<c>src/Host/Operations</c>); everything else, the actor
/// tests included, gets <see cref="NoMetrics"/>, so no test needs a listener. Calls are cheap and never throw.</summary>
public interface IGardenMetrics
{
    /// <summary>Events written to the journal by one persistent actor (<paramref name="writer"/>: host or container).</summary>
    void Journaled(string writer, int events);

    /// <summary>How many containers the host knows in each lifecycle state, every state named (0 for none).</summary>
    void ContainersByState(IReadOnlyDictionary<ContainerLifecycle, int> counts);

    /// <summary>The host finished its recovery at a start: what it found, and how long it took.</summary>
    void Recovered(int reattached, int broken, int released, int unfinished, TimeSpan took);

    /// <summary>The kernel OOM-killed a process of a container (each notification, before any throttling of the event).</summary>
    void OomKilled(string handle);

    /// <summary>One API operation (gRPC, Akka.Remote and Garden HTTP alike) ended: its kind (the rpc's name), how long it
    /// took and, when it failed, the status code name (NotFound, InvalidArgument ...).</summary>
    void Operation(string kind, TimeSpan took, string? errorCode);

    /// <summary>One call to a container's agent ended (its round trip), failed or not.</summary>
    void AgentCall(string call, TimeSpan took, bool failed);

    /// <summary>The warm pool now: its configured size, the entries it holds (made, being made or checked after a restart)
    /// and those ready for a Create to take.</summary>
    void WarmPool(int size, int entries, int ready) { }

    /// <summary>A Create was admitted while the warm pool is on: <paramref name="outcome"/> is "pooled" (it took an entry),
    /// "empty" (it could have, but no entry was ready) or "ineligible" (not of the pool's shape).</summary>
    void PoolCreate(string outcome) { }
}

/// <summary>Metrics nobody reads: the default of every actor and of the tests.</summary>
public sealed class NoMetrics : IGardenMetrics
{
    public static readonly NoMetrics Instance = new();

    public void Journaled(string writer, int events) { }

    public void ContainersByState(IReadOnlyDictionary<ContainerLifecycle, int> counts) { }

    public void Recovered(int reattached, int broken, int released, int unfinished, TimeSpan took) { }

    public void OomKilled(string handle) { }

    public void Operation(string kind, TimeSpan took, string? errorCode) { }

    public void AgentCall(string call, TimeSpan took, bool failed) { }
}

/// <summary>Counting <see cref="Host.ContainerDirectory"/> by state for <see cref="IGardenMetrics.ContainersByState"/>.</summary>
public static class ContainerCensus
{
    public static ImmutableDictionary<ContainerLifecycle, int> Count(IEnumerable<ContainerLifecycle> states)
    {
        var counts = Enum.GetValues<ContainerLifecycle>().ToDictionary(s => s, _ => 0);
        foreach (var s in states) counts[s]++;
        return counts.ToImmutableDictionary();
    }
}
