using System.Collections.Immutable;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Akka.Persistence.Sql;
using Akka.Persistence.Sql.Config;
using Akka.Persistence.Sql.Db;
using Akka.Persistence.Sql.Journal;
using Akka.Persistence.Sql.Journal.Dao;
using Akka.Persistence.Sql.Journal.Types;
using Akka.Streams;
using Akka.Streams.Dsl;
using Garden.Protocol.Journal;
using LinqToDB;

namespace Garden.Host;

/// <summary>Akka.Persistence.Sql's journal, with a restart's replays read ahead in one query. Each container actor
/// replays its own journal at a restart: a highest-sequence-number query, a replay query and an Akka Streams graph each,
/// 250 times over at 250 containers (the largest share of a restart's CPU). When the host names the journals about to be
/// replayed (<see cref="ReplayHints.Coming"/>), their rows are read in one query and deserialized in one stream; each
/// id's first highest-sequence-number read and replay are answered from them, and the read-ahead rows of an id are
/// dropped at its replay, at its first write or delete, or when the host says the replays are over. Everything else — and
/// everything when the read-ahead failed — is the base journal's. A Create's new incarnation (<see cref="ReplayHints.Fresh"/>)
/// is not looked up at all: its recovery's highest-sequence-number query is answered 0.</summary>
public sealed class BatchReplayJournal : SqlWriteJournal
{
    private sealed record Row(long SequenceNr, bool Deleted, IPersistentRepresentation? Event);

    /// <summary>The most events of one journal read ahead (snapshot-every is 50 by default).</summary>
    private const int MaxAhead = 200;

    private readonly JournalConfig _config;
    /// <summary>Per id named by the host: its rows once read, null while the read runs.</summary>
    private readonly Dictionary<string, List<Row>?> _ahead = [];
    private readonly object _gate = new();
    /// <summary>Ids the host named new (<see cref="ReplayHints.Fresh"/>) whose highest sequence number was not read yet.</summary>
    private readonly HashSet<string> _fresh = [];
    private volatile Task _reading = Task.CompletedTask;

    public BatchReplayJournal(Akka.Configuration.Config journalConfig) : base(journalConfig) =>
        _config = new JournalConfig(journalConfig.WithFallback(SqlPersistence.DefaultJournalConfiguration));

    protected override bool ReceivePluginInternal(object message)
    {
        switch (message)
        {
            case ReplayHints.Coming coming:
                ReadAhead(coming.PersistenceIds);
                return true;
            case ReplayHints.Fresh fresh:
                lock (_gate) _fresh.Add(fresh.PersistenceId);
                return true;
            case ReplayHints.Done:
                lock (_gate) _ahead.Clear();
                return true;
            default:
                return base.ReceivePluginInternal(message);
        }
    }

    private void ReadAhead(IReadOnlyCollection<string> ids)
    {
        lock (_gate)
            foreach (var id in ids) _ahead[id] = null; // a replay of it waits for the read
        var connections = new AkkaPersistenceDataConnectionFactory(_config);
        var deserialize = new ByteArrayJournalSerializer(_config, Context.System.Serialization, _config.PluginConfig.TagSeparator,
            Guid.NewGuid().ToString()).DeserializeFlow();
        var materializer = Context.System.Materializer();
        var log = Context.GetLogger();
        var previous = _reading;
        _reading = Task.Run(async () =>
        {
            await previous.ConfigureAwait(false);
            try
            {
                foreach (var chunk in ids.Chunk(500))
                {
                    List<JournalRow> rows;
                    using (var db = connections.GetConnection())
                        rows = await LinqToDB.Async.AsyncExtensions.ToListAsync(db.GetTable<JournalRow>().Where(r => chunk.Contains(r.PersistenceId))).ConfigureAwait(false);
                    // a journal longer than MaxAhead (a long-lived container: its snapshot spares the base most of it) is left
                    // to the base, which reads it from its latest snapshot on
                    var longer = rows.Where(r => !r.Deleted).GroupBy(r => r.PersistenceId).Where(g => g.Count() > MaxAhead)
                        .Select(g => g.Key).ToHashSet();
                    var live = rows.Where(r => !r.Deleted && !longer.Contains(r.PersistenceId)).ToList();
                    var events = await Source.From(live).Via(deserialize)
                        .RunWith(Sink.Seq<Akka.Util.Try<(IPersistentRepresentation, string[], long)>>(), materializer).ConfigureAwait(false);
                    var read = chunk.ToDictionary(id => id, List<Row>? (id) => longer.Contains(id) ? null : []);
                    foreach (var r in rows.Where(r => r.Deleted)) read[r.PersistenceId]?.Add(new Row(r.SequenceNumber, true, null));
                    for (var i = 0; i < live.Count; i++)
                    {
                        // a journal with an event that does not deserialize is left to the base (whose replay fails as before)
                        if (!events[i].IsSuccess) read[live[i].PersistenceId] = null;
                        else read[live[i].PersistenceId]?.Add(new Row(live[i].SequenceNumber, false, events[i].Success.Value.Item1));
                    }
                    lock (_gate)
                        foreach (var (id, list) in read)
                            if (_ahead.TryGetValue(id, out var pending) && pending is null) // not written, forgotten or dropped since
                            {
                                if (list is null) _ahead.Remove(id);
                                else _ahead[id] = list;
                            }
                }
            }
            catch (Exception e)
            {
                log.Warning("reading the journals of a restart ahead failed ({0}); each is read on its own", e.Message);
            }
            finally
            {
                materializer.Dispose();
                lock (_gate)
                    foreach (var id in ids)
                        if (_ahead.TryGetValue(id, out var pending) && pending is null) _ahead.Remove(id);
            }
        });
    }

    /// <summary>The rows read ahead for <paramref name="id"/> (waiting for the read if it is still running), or null.</summary>
    private async Task<List<Row>?> AheadAsync(string id, bool take)
    {
        lock (_gate)
            if (!_ahead.ContainsKey(id)) return null;
        await _reading.ConfigureAwait(false);
        lock (_gate)
        {
            if (!_ahead.TryGetValue(id, out var rows) || rows is null) return null;
            if (take) _ahead.Remove(id);
            return rows;
        }
    }

    private void Forget(string id)
    {
        lock (_gate)
        {
            _ahead.Remove(id);
            _fresh.Remove(id);
        }
    }

    public override async Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken = default)
    {
        lock (_gate)
            if (_fresh.Remove(persistenceId)) return 0; // a Create's new incarnation: nothing is written under it yet
        if (await AheadAsync(persistenceId, take: false).ConfigureAwait(false) is { } rows)
            return rows.Where(r => r.SequenceNr > fromSequenceNr).Select(r => r.SequenceNr).DefaultIfEmpty(0).Max();
        return await base.ReadHighestSequenceNrAsync(persistenceId, fromSequenceNr, cancellationToken).ConfigureAwait(false);
    }

    public override async Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr,
        long max, Action<IPersistentRepresentation> recoveryCallback)
    {
        if (await AheadAsync(persistenceId, take: true).ConfigureAwait(false) is not { } rows)
        {
            await base.ReplayMessagesAsync(context, persistenceId, fromSequenceNr, toSequenceNr, max, recoveryCallback).ConfigureAwait(false);
            return;
        }
        foreach (var row in rows.Where(r => !r.Deleted && r.SequenceNr >= fromSequenceNr && r.SequenceNr <= toSequenceNr)
                     .OrderBy(r => r.SequenceNr).Take((int)Math.Min(max, int.MaxValue)))
            recoveryCallback(row.Event!);
    }

    protected override Task<IImmutableList<Exception>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken = default)
    {
        var writes = messages.ToList();
        foreach (var w in writes) Forget(w.PersistenceId);
        return base.WriteMessagesAsync(writes, cancellationToken);
    }

    protected override Task DeleteMessagesToAsync(string persistenceId, long toSequenceNr, CancellationToken cancellationToken = default)
    {
        Forget(persistenceId);
        return base.DeleteMessagesToAsync(persistenceId, toSequenceNr, cancellationToken);
    }
}
