using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Mapping;

namespace Garden.Host;

/// <summary>The journal's first query costs gardend ~330 ms at every start, even with an empty journal: linq2db (under
/// Akka.Persistence.Sql) loads and compiles its translation pipeline and the SQLite provider on first use, and the host's
/// recovery waits for it. This runs the same kind of queries (highest sequence number, events of one id, latest snapshot)
/// once against a private in-memory database on another thread while gardend builds its host and actor system, so that
/// work is done by the time the host recovers. It never touches the journal file; a failure only means no head start.</summary>
public static class JournalWarmUp
{
    [Table("journal")]
    private sealed class Row
    {
        [Column("ordering"), PrimaryKey, Identity] public long Ordering { get; set; }
        [Column("persistence_id")] public string PersistenceId { get; set; } = "";
        [Column("sequence_number")] public long SequenceNumber { get; set; }
        [Column("deleted")] public bool Deleted { get; set; }
        [Column("message")] public byte[] Message { get; set; } = [];
        [Column("manifest")] public string? Manifest { get; set; }
        [Column("identifier")] public int? Identifier { get; set; }
    }

    [Table("snapshot")]
    private sealed class Snapshot
    {
        [Column("persistence_id"), PrimaryKey] public string PersistenceId { get; set; } = "";
        [Column("sequence_number"), PrimaryKey] public long SequenceNumber { get; set; }
        [Column("created")] public long Created { get; set; }
        [Column("snapshot")] public byte[]? Payload { get; set; }
    }

    public static void Start() => Task.Run(() =>
    {
        try
        {
            using var db = new DataConnection(new DataOptions().UseConnectionString(ProviderName.SQLiteMS, "Data Source=:memory:"));
            db.CreateTable<Row>();
            db.CreateTable<Snapshot>();
            db.Insert(new Row { PersistenceId = "warm-up", SequenceNumber = 1, Message = [1] });
            _ = db.GetTable<Row>().Where(r => r.PersistenceId == "warm-up").Max(r => (long?)r.SequenceNumber);
            _ = db.GetTable<Row>().Where(r => r.PersistenceId == "warm-up" && r.SequenceNumber >= 1 && r.SequenceNumber <= long.MaxValue && !r.Deleted)
                .OrderBy(r => r.SequenceNumber).Take(100).ToList();
            _ = db.GetTable<Snapshot>().Where(s => s.PersistenceId == "warm-up" && s.SequenceNumber <= long.MaxValue)
                .OrderByDescending(s => s.SequenceNumber).FirstOrDefault();
        }
        catch (Exception)
        {
            // a head start only: the journal itself is opened by Akka.Persistence.Sql as always
        }
    });
}
