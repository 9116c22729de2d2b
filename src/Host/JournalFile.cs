using Microsoft.Data.Sqlite;

namespace Garden.Host;

/// <summary>The SQLite journal: checked before any actor reads it, so a corrupt or unreadable file stops gardend with
/// a message naming it — never a silent empty daemon.</summary>
public static class JournalFile
{
    public static string ConnectionString(string path) => new SqliteConnectionStringBuilder { DataSource = path }.ToString();

    /// <summary>The journal and snapshot store (Akka.Persistence.Sql on SQLite, chosen in this assembly's reference.conf)
    /// pointed at <paramref name="path"/>.</summary>
    public static Akka.Configuration.Config AkkaConfig(string path)
    {
        var db = ConnectionString(path).Replace("\\", "\\\\").Replace("\"", "\\\"");
        return Akka.Configuration.ConfigurationFactory.ParseString($"""
            akka.persistence.journal.sql.connection-string = "{db}"
            akka.persistence.snapshot-store.sql.connection-string = "{db}"
            """);
    }

    /// <summary>Creates the directory, opens the database, switches it to WAL (durable across a crash of the
    /// process, one writer at a time) and runs SQLite's quick check; throws with the file's name on any problem.</summary>
    public static void Prepare(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            using var db = new SqliteConnection(ConnectionString(path));
            db.Open();
            using (var wal = db.CreateCommand())
            {
                wal.CommandText = "PRAGMA journal_mode=WAL;";
                wal.ExecuteScalar();
            }
            using var check = db.CreateCommand();
            check.CommandText = "PRAGMA quick_check;";
            var result = check.ExecuteScalar() as string;
            if (result != "ok") throw new InvalidDataException($"the journal {path} is corrupt: {result}");
        }
        catch (SqliteException e)
        {
            throw new InvalidDataException($"the journal {path} cannot be read: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InvalidDataException($"the journal {path} cannot be opened: {e.Message}", e);
        }
    }
}
