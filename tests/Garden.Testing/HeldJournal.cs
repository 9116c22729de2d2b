using System.Collections.Immutable;
using Akka.Persistence;
using Akka.Persistence.Journal;

namespace Garden.Testing;

/// <summary>The in-memory journal, whose writes of one kind of record a test can hold (<see cref="Hold"/>) and then let
/// through or lose (<see cref="Release"/>): a write the daemon is still waiting for when it dies. One test at a time
/// (the hold is static: Akka makes the journal).</summary>
public sealed class HeldJournal : MemoryJournal
{
    /// <summary>The config of an ActorSystem on this journal (and the in-memory snapshot store).</summary>
    public const string Config = """
        akka.persistence.journal.plugin = "akka.persistence.journal.held"
        akka.persistence.journal.held {
          class = "Garden.Testing.HeldJournal, Garden.Testing"
          plugin-dispatcher = "akka.actor.default-dispatcher"
        }
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        """;

    private static readonly Lock Gate = new();
    private static Type? _held;
    private static TaskCompletionSource<bool>? _release;
    private static int _waiting;

    /// <summary>From now on, a write with a record of type <typeparamref name="T"/> waits for <see cref="Release"/>.</summary>
    public static void Hold<T>()
    {
        lock (Gate)
        {
            _held = typeof(T);
            _release = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiting = 0;
        }
    }

    /// <summary>How many writes wait.</summary>
    public static int Waiting
    {
        get { lock (Gate) return _waiting; }
    }

    /// <summary>The writes held go on (<paramref name="write"/>) or fail, never written; later ones are not held.</summary>
    public static void Release(bool write)
    {
        TaskCompletionSource<bool>? release;
        lock (Gate)
        {
            (release, _release, _held) = (_release, null, null);
        }
        release?.SetResult(write);
    }

    protected override async Task<IImmutableList<Exception?>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var writes = messages.ToList();
        Task<bool>? release = null;
        lock (Gate)
        {
            if (_held is { } held && _release is { } r
                && writes.Any(w => ((IEnumerable<IPersistentRepresentation>)w.Payload).Any(p => held.IsInstanceOfType(p.Payload))))
            {
                release = r.Task;
                _waiting++;
            }
        }
        if (release is not null && !await release.ConfigureAwait(false))
            throw new IOException("the journal write was lost (HeldJournal)");
        return await base.WriteMessagesAsync(writes, cancellationToken).ConfigureAwait(false);
    }
}
