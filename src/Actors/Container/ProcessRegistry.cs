using Akka.Actor;
using Garden.Protocol.Agent;

namespace Garden.Actors.Container;

/// <summary>
/// A container's view of its processes (state of its ContainerActor, no I/O): the ProcessActors alive now by process id,
/// with how many messages each was sent (so one is stopped only when nothing is on its way to it), and the processes whose
/// exit nobody here has seen yet, which the exit watcher looks up in the agent — one List at a time.
/// Bounded: a ProcessActor goes once its process is done (<see cref="Process.ProcessIdle"/>), a pending id once its exit was
/// seen or the agent forgot it.
/// </summary>
public sealed class ProcessRegistry
{
    private sealed class Child(IActorRef actor)
    {
        public IActorRef Actor { get; } = actor;
        public int Sent { get; set; }
    }

    private readonly Dictionary<string, Child> _children = new(StringComparer.Ordinal);
    private readonly HashSet<string> _exitPending = new(StringComparer.Ordinal);
    private long _seq;

    /// <summary>A List or a wait of the exit watcher is out (at most one per container).</summary>
    public bool ListInFlight { get; private set; }

    /// <summary>Waits that failed in a row before the agent is taken for one that cannot wait (it closes instead of
    /// answering an operation it does not know).</summary>
    public const int WaitFailuresMax = 3;

    private int _waitFailures;

    /// <summary>The agent cannot wait for exits (an earlier build, which refuses the operation): it is polled with List.</summary>
    public bool WaitsRefused { get; private set; }

    /// <summary>A wait for exits ended: answered (the next one goes out at once), refused by an agent that does not know
    /// it, or failed (the agent went, or closed without answering: after <see cref="WaitFailuresMax"/> in a row the
    /// agent is polled for good).</summary>
    public void WaitEnded(bool answered, bool refused)
    {
        if (answered) _waitFailures = 0;
        else if (refused || ++_waitFailures >= WaitFailuresMax) WaitsRefused = true;
    }

    public int Actors => _children.Count;

    public int Pending => _exitPending.Count;

    public bool IsPending(string id) => _exitPending.Contains(id);

    public IActorRef? Find(string id) => _children.TryGetValue(id, out var c) ? c.Actor : null;

    /// <summary>An actor name for a process id that is never reused, even while an earlier actor of that id is stopping
    /// ('~' is not allowed in process ids).</summary>
    public string NameFor(string id) => $"{Names.ActorName(id)}~{++_seq}";

    public void Add(string id, IActorRef actor) => _children[id] = new Child(actor);

    /// <summary>Tells the process's actor msg on behalf of sender, counting it.</summary>
    public bool Send(string id, object msg, IActorRef sender)
    {
        if (!_children.TryGetValue(id, out var c)) return false;
        c.Sent++;
        c.Actor.Tell(msg, sender);
        return true;
    }

    /// <summary>The agent runs the process now: watch for its exit.</summary>
    public void Watch(string id) => _exitPending.Add(id);

    /// <summary>A ProcessActor has nothing left to do. True when the container should stop it now (it has taken every
    /// message sent to it); its exit, if known, needs no watching any more.</summary>
    public bool Idle(string id, IActorRef actor, int handled, bool exitKnown)
    {
        if (exitKnown) _exitPending.Remove(id);
        if (!_children.TryGetValue(id, out var c) || !c.Actor.Equals(actor) || c.Sent != handled) return false;
        _children.Remove(id);
        return true;
    }

    /// <summary>The actor stopped for another reason than being idle (it failed): whatever is sent for its process next
    /// goes to a new actor.</summary>
    public void Forget(IActorRef actor)
    {
        foreach (var (id, child) in _children)
            if (child.Actor.Equals(actor))
            {
                _children.Remove(id);
                return;
            }
    }

    /// <summary>The ids to look up now, or null when nothing is pending or a List is still out.</summary>
    public IReadOnlyCollection<string>? StartList()
    {
        if (ListInFlight || _exitPending.Count == 0) return null;
        ListInFlight = true;
        return [.. _exitPending];
    }

    /// <summary>What one answered List means for the ids it was asked for (and for those watched since that it shows exited).</summary>
    public sealed record Finding(string Id, Exited? Exit, IActorRef? Actor)
    {
        /// <summary>The agent no longer knows it (it forgot it before anyone here saw its exit).</summary>
        public bool Gone => Exit is null;
    }

    /// <summary>The List of <see cref="StartList"/> came back (null: it failed, try again next time). Returns the ids
    /// that exited (with their actor, if one is alive) or that the agent no longer knows; they are not pending any more.</summary>
    public List<Finding> Listed(IReadOnlyList<ProcessEntry>? processes, IReadOnlyCollection<string> asked)
    {
        ListInFlight = false;
        var found = new List<Finding>();
        if (processes is null) return found;
        var byId = new Dictionary<string, ProcessEntry>(StringComparer.Ordinal);
        foreach (var p in processes) byId[p.Id] = p;
        var askedSet = asked as IReadOnlySet<string> ?? new HashSet<string>(asked, StringComparer.Ordinal);
        foreach (var id in _exitPending.ToArray())
        {
            if (byId.TryGetValue(id, out var e))
            {
                // an exit shown is an exit, also of a process watched after the List went out (a wait answers at any
                // exit, and reports it to the agent: it must not be passed over)
                if (!e.Exited) continue;
                _exitPending.Remove(id);
                found.Add(new Finding(id, e.Exit ?? new Exited(), Find(id)));
            }
            else if (askedSet.Contains(id))
            {
                // every id asked for was running in the agent before this List went out (one watched since may have
                // been spawned after the agent made the answer)
                _exitPending.Remove(id);
                found.Add(new Finding(id, null, Find(id)));
            }
        }
        return found;
    }
}
