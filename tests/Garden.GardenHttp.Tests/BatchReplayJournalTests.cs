using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Garden.Protocol.Journal;
using Microsoft.Data.Sqlite;

namespace Garden.GardenHttp.Tests;

/// <summary>gardend's journal (Garden.Host.BatchReplayJournal) on a real SQLite file: the journals the host names are
/// read ahead in one query and replayed from those rows, once; everything else, and a second replay, from the file.</summary>
public sealed class BatchReplayJournalTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("garden-test-journal-").FullName;
    private readonly List<ActorSystem> _systems = [];

    private string Db => Path.Combine(_dir, "journal.db");

    public void Dispose()
    {
        foreach (var s in _systems) s.Terminate().Wait(TimeSpan.FromSeconds(10));
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private ActorSystem NewSystem()
    {
        var system = ActorSystem.Create("journal", ConfigurationFactory.ParseString($$"""
            akka.loglevel = WARNING
            akka.persistence.journal.plugin = "akka.persistence.journal.sql"
            akka.persistence.journal.sql {
              class = "Garden.Host.BatchReplayJournal, gardend"
              provider-name = "SQLite.MS"
              connection-string = "Data Source={{Db}}"
              auto-initialize = on
              replay-filter.mode = off
            }
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.sql"
            akka.persistence.snapshot-store.sql {
              provider-name = "SQLite.MS"
              connection-string = "Data Source={{Db}}"
              auto-initialize = on
            }
            """));
        Akka.Persistence.Sql.SqlPersistence.Get(system);
        _systems.Add(system);
        return system;
    }

    private sealed class Recorder(string id, bool fresh = false) : UntypedPersistentActor
    {
        private readonly List<string> _seen = [];

        public override string PersistenceId => id;

        /// <summary>As a Create's new container actor: no replay, only the highest sequence number.</summary>
        public override Recovery Recovery => fresh ? Recovery.None : base.Recovery;

        protected override void OnRecover(object message)
        {
            if (message is string s) _seen.Add(s);
        }

        protected override void OnCommand(object message)
        {
            switch (message)
            {
                case "state":
                    Sender.Tell($"{string.Join(",", _seen)}@{LastSequenceNr}");
                    break;
                case string s:
                    var sender = Sender;
                    Persist(s, e =>
                    {
                        _seen.Add(e);
                        sender.Tell("ok");
                    });
                    break;
            }
        }
    }

    private static string State(ActorSystem system, string id, string? name = null, bool fresh = false) =>
        system.ActorOf(Props.Create(() => new Recorder(id, fresh)), name ?? id + Guid.NewGuid().ToString("N")[..6])
            .Ask<string>("state", TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();

    private static void Write(ActorSystem system, string id, params string[] events)
    {
        var actor = system.ActorOf(Props.Create(() => new Recorder(id)));
        foreach (var e in events) Assert.Equal("ok", actor.Ask<string>(e, TimeSpan.FromSeconds(10)).GetAwaiter().GetResult());
        system.Stop(actor);
    }

    private void Execute(string sql)
    {
        using var db = new SqliteConnection($"Data Source={Db}");
        db.Open();
        using var command = db.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    [Fact]
    public async Task Named_journals_are_replayed_from_one_read_ahead_once_and_then_from_the_file()
    {
        var first = NewSystem();
        Write(first, "container-a-1", "a1", "a2", "a3");
        Write(first, "container-b-2", "b1");
        Write(first, "container-c-3", "c1", "c2");
        await first.Terminate();

        var second = NewSystem();
        Persistence.Instance.Apply(second).JournalFor(null).Tell(new ReplayHints.Coming(["container-a-1", "container-b-2", "container-gone-9"]));
        Assert.Equal("a1,a2,a3@3", State(second, "container-a-1")); // its replay waited for the read of all three
        // b's rows leave the file after the read: its replay is the rows read ahead (the file's journal would give nothing)
        Execute("DELETE FROM journal WHERE persistence_id = 'container-b-2'");
        Assert.Equal("b1@1", State(second, "container-b-2"));
        Assert.Equal("c1,c2@2", State(second, "container-c-3")); // not named: from the file
        Assert.Equal("@0", State(second, "container-gone-9")); // named, no journal
        // a second replay of a named journal is the file's, with what was written since
        Write(second, "container-a-1", "a4");
        Assert.Equal("a1,a2,a3,a4@4", State(second, "container-a-1"));
        Assert.Equal("@0", State(second, "container-b-2")); // read ahead once only: now the file's, where b is gone
    }

    [Fact]
    public async Task What_was_read_ahead_and_not_replayed_is_dropped_when_the_replays_are_over_and_a_long_journal_is_not_read_ahead()
    {
        var first = NewSystem();
        Write(first, "container-d-4", "d1", "d2");
        Write(first, "container-long-6", [.. Enumerable.Range(1, 201).Select(i => $"l{i}")]);
        await first.Terminate();

        var second = NewSystem();
        var journal = Persistence.Instance.Apply(second).JournalFor(null);
        journal.Tell(new ReplayHints.Coming(["container-d-4", "container-e-5", "container-long-6"]));
        Assert.Equal("@0", State(second, "container-e-5")); // waited for the read
        Execute("DELETE FROM journal WHERE persistence_id = 'container-long-6'");
        Assert.Equal("@0", State(second, "container-long-6")); // more than 200 events: the file's (its snapshot spares the rest)
        journal.Tell(ReplayHints.Done.Instance);
        Execute("DELETE FROM journal WHERE persistence_id = 'container-d-4'");
        Assert.Equal("@0", State(second, "container-d-4")); // the file's: the rows read ahead were dropped
    }

    /// <summary>A Create's new incarnation, named fresh by the host before its actor exists, is answered without a look at
    /// the file (rows planted under its id here show it: a real fresh id has none), once.</summary>
    [Fact]
    public void A_fresh_id_is_answered_without_a_read_once_and_a_write_forgets_it()
    {
        var first = NewSystem();
        Write(first, "container-f-7", "f1", "f2");
        Write(first, "container-g-8", "g1");
        var journal = Persistence.Instance.Apply(first).JournalFor(null);
        journal.Tell(new ReplayHints.Fresh("container-f-7"));
        Assert.Equal("@0", State(first, "container-f-7", fresh: true)); // the hint's answer: nothing read
        Assert.Equal("@2", State(first, "container-f-7", fresh: true)); // once: now the file's
        Assert.Equal("f1,f2@2", State(first, "container-f-7"));
        Assert.Equal("@1", State(first, "container-g-8", fresh: true)); // not named: the file's
    }
}
