using Garden.Actors;

namespace Garden.Host;

/// <summary>The state dir is root's alone: 0700, and the files that hold secrets (journal.db and its -wal/-shm, each
/// bundle's config.json: a Create's environment) 0600. A fresh state dir is made 0700 by mkdir itself, and an existing one
/// (an upgrade from a build that made it 0755 and the journal 0644) is closed at start, before the journal is opened and any
/// actor writes: no unprivileged host user can reach anything below it — the journal, the bundles, a setuid file a
/// container planted in its rootfs — from then on.
/// (Not a process umask of 077: runc inherits it and creates the container's missing mount points with it, which made
/// /.garden and the parents of bind-mount destinations 0700 inside containers.)</summary>
public static class StateDir
{
    public const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode Secret = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates or closes the state dir, its depot and sockets directories, the journal and every bundle's config.</summary>
    public static void Close(GardenSettings settings)
    {
        PrivateDirectory(settings.StateDir);
        PrivateDirectory(settings.DepotDir);
        PrivateDirectory(Path.Combine(settings.StateDir, "sockets"));
        foreach (var suffix in new[] { "", "-wal", "-shm", "-journal" })
            if (File.Exists(settings.JournalPath + suffix)) File.SetUnixFileMode(settings.JournalPath + suffix, Secret);
        if (!File.Exists(settings.JournalPath))
        {
            // SQLite gives its -wal and -shm files the mode of the database file: 0600 from the first byte.
            using var _ = new FileStream(settings.JournalPath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = Secret,
            });
        }
        foreach (var depot in Directory.EnumerateDirectories(settings.DepotDir))
        {
            File.SetUnixFileMode(depot, Private);
            var bundle = Path.Combine(depot, "bundle");
            if (Directory.Exists(bundle)) File.SetUnixFileMode(bundle, Private);
            var config = Path.Combine(bundle, "config.json");
            if (File.Exists(config)) File.SetUnixFileMode(config, Secret);
        }
    }

    /// <summary>A directory only root may enter: made 0700 by mkdir, or set to 0700 when it exists.</summary>
    public static void PrivateDirectory(string path)
    {
        if (Directory.Exists(path)) File.SetUnixFileMode(path, Private);
        else Directory.CreateDirectory(path, Private);
    }
}
