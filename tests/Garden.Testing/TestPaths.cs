namespace Garden.Testing;

/// <summary>Where the tests find the built binaries and the default rootfs.</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Garden.Actors.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Garden.Actors.sln above {AppContext.BaseDirectory}");
    }

    public static string AgentBinary => Binary("GARDEN_AGENT_BIN", "garden-agent");
    public static string CliBinary => Binary("GARDEN_CLI_BIN", "garden");

    public static string GardendDll
    {
        get
        {
            var dll = Path.Combine(RepoRoot, "out", "gardend", "gardend.dll");
            if (!File.Exists(dll)) throw new FileNotFoundException($"{dll} missing: run `make build` (or `make test`) first");
            return dll;
        }
    }

    /// <summary>Where `make install` puts the default rootfs.</summary>
    public const string InstalledRootfs = "/usr/local/share/garden-actors/rootfs";

    public static string DefaultRootfs
    {
        get
        {
            var dir = Environment.GetEnvironmentVariable("GARDEN_TEST_ROOTFS") ?? InstalledRootfs;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir} missing: run `make install` first");
            return dir;
        }
    }

    private static string Binary(string env, string name)
    {
        var path = Environment.GetEnvironmentVariable(env) ?? Path.Combine(RepoRoot, "out", "bin", name);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} missing: run `make build` (or `make test`) first");
        return path;
    }

    /// <summary>A fresh directory under /tmp/garden-test-*: the leak check of scripts/test.sh looks there.</summary>
    public static string NewTempDir(string what) => Directory.CreateTempSubdirectory($"garden-test-{what}-").FullName;

    /// <summary>Makes a temp dir traversable (0711; it is made 0700): runc finds a container's root as container root,
    /// an unprivileged host uid, so a mount dir below it must be reachable (nothing can be listed).</summary>
    public static string Traversable(string dir)
    {
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        return dir;
    }
}
