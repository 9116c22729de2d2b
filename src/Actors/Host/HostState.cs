using System.Collections.Immutable;
using Garden.Protocol.Journal;
using Google.Protobuf;

namespace Garden.Actors.Host;

/// <summary>The pure state of the host: which handles exist and under which incarnation their journal lives.</summary>
public sealed record HostState(ImmutableDictionary<string, long> Containers, long NextIncarnation, ImmutableList<string> Versions)
{
    public static readonly HostState Empty = new(ImmutableDictionary<string, long>.Empty, 1, []);

    public HostState Apply(IMessage evt) => evt switch
    {
        DaemonStarted d => this with { Versions = Versions.Add(d.Version) },
        ContainerRegistered r => this with
        {
            Containers = Containers.SetItem(r.Handle, r.Incarnation), NextIncarnation = Math.Max(NextIncarnation, r.Incarnation + 1),
        },
        ContainerReleased r => this with { Containers = Containers.Remove(r.Handle) },
        RecoveryFinished => this,
        HostSnapshot s => new HostState(s.Containers.ToImmutableDictionary(), s.NextIncarnation, [.. s.Versions]),
        _ => throw new ArgumentOutOfRangeException(nameof(evt), evt.GetType().Name, "unknown host event"),
    };

    public HostSnapshot ToSnapshot()
    {
        var s = new HostSnapshot { NextIncarnation = NextIncarnation };
        s.Containers.Add(Containers);
        s.Versions.AddRange(Versions);
        return s;
    }

    public static string PersistenceIdOf(string handle, long incarnation) => $"container-{handle}-{incarnation}";
}
