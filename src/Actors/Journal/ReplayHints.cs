namespace Garden.Protocol.Journal;

/// <summary>What the host tells the journal plugin about a restart's replays. A journal that knows them may read the
/// named journals in one query (gardend's, <c>Garden.Host.BatchReplayJournal</c>); any other ignores them.</summary>
public static class ReplayHints
{
    /// <summary>The journals of these persistence ids are about to be replayed, each once, before any of them is written.</summary>
    public sealed record Coming(IReadOnlyCollection<string> PersistenceIds);

    /// <summary>This persistence id is new (a fresh incarnation the host just registered): its actor's recovery asks
    /// for its highest sequence number, which is 0 without a query. Sent before the actor is made (so it arrives before
    /// the actor's recovery does); forgotten at that first read or at a write.</summary>
    public sealed record Fresh(string PersistenceId);

    /// <summary>The restart's replays are over: whatever was read ahead and not replayed is dropped.</summary>
    public sealed record Done
    {
        public static readonly Done Instance = new();
    }
}
