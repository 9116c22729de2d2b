namespace Garden.Protocol.Journal;

/// <summary>What the host tells the journal plugin about a restart's replays. A journal that knows them may read the
/// named journals in one query (gardend's, <c>Garden.Host.BatchReplayJournal</c>); any other ignores them.</summary>
public static class ReplayHints
{
    /// <summary>The journals of these persistence ids are about to be replayed, each once, before any of them is written.</summary>
    public sealed record Coming(IReadOnlyCollection<string> PersistenceIds);

    /// <summary>The restart's replays are over: whatever was read ahead and not replayed is dropped.</summary>
    public sealed record Done
    {
        public static readonly Done Instance = new();
    }
}
