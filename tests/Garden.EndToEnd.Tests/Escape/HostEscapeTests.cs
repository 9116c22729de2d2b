using System.Text.Json;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>An unprivileged user of the host (nobody) against gardend's state dir: it must not read a Create's secrets
/// in the journal or a bundle, nor run a setuid file a container planted in its rootfs. Each attack is shown to work
/// where nothing stops it (a probe that could not fail would prove nothing), then shown to fail on gardend's files.</summary>
public sealed class HostEscapeTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private const string Secret = "DB_PASSWORD=hunter2-escape-probe";

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static UnixFileMode Mode(string path) => File.GetUnixFileMode(path) & (UnixFileMode)0b111_111_111;

    /// <summary>A world-readable and -traversable place outside the state dir, for the probes' controls.</summary>
    private string Control()
    {
        HostUser.Traversable(D.Dir);
        var dir = Path.Combine(D.Dir, "control");
        Directory.CreateDirectory(dir);
        HostUser.Traversable(dir);
        return dir;
    }

    private async Task<string> CreateWithSecret()
    {
        var h = Unique("secret");
        var r = await D.CliAsync("create", "--handle", h, "--env", Secret);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    [InstallFact]
    public async Task Nobody_cannot_read_the_journal_or_a_bundle_that_hold_a_creates_secret()
    {
        var h = await CreateWithSecret();
        try
        {
            var journal = Path.Combine(D.StateDir, "journal.db");
            var config = Path.Combine(D.StateDir, "depot", h, "bundle", "config.json");
            // the secret is there, for root
            Assert.Contains(Secret, await File.ReadAllTextAsync(config));
            Assert.Contains(Secret, System.Text.Encoding.UTF8.GetString(await ReadSharedAsync(journal)) + ReadWal(journal));

            // control: the same probe, on a world-readable copy, reads it
            var control = Path.Combine(Control(), "config.json");
            File.Copy(config, control, overwrite: true);
            File.SetUnixFileMode(control, (UnixFileMode)0b110_100_100);
            var readable = await HostUser.NobodyAsync("cat", control);
            Assert.True(readable.ExitCode == 0 && readable.Stdout.Contains(Secret), $"the probe must work where nothing stops it: {readable}");

            foreach (var file in new[] { journal, journal + "-wal", config, Path.Combine(D.StateDir, "depot", h, "agent.log") })
            {
                var r = await HostUser.NobodyAsync("cat", file);
                Assert.NotEqual(0, r.ExitCode);
                Assert.DoesNotContain(Secret, r.Stdout);
                Assert.Contains("Permission denied", r.Stderr);
            }
            var list = await HostUser.NobodyAsync("ls", D.StateDir);
            Assert.NotEqual(0, list.ExitCode);

            // closed twice over: the dirs are root's alone, the files that hold secrets too
            Assert.Equal((UnixFileMode)0b111_000_000, Mode(D.StateDir));
            Assert.Equal((UnixFileMode)0b111_000_000, Mode(Path.Combine(D.StateDir, "depot")));
            Assert.Equal((UnixFileMode)0b111_000_000, Mode(Path.Combine(D.StateDir, "depot", h)));
            Assert.Equal((UnixFileMode)0b111_000_000, Mode(Path.Combine(D.StateDir, "sockets")));
            Assert.Equal((UnixFileMode)0b110_000_000, Mode(journal));
            Assert.Equal((UnixFileMode)0b110_000_000, Mode(journal + "-wal"));
            Assert.Equal((UnixFileMode)0b110_000_000, Mode(config));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>A local user who can reach the socket's path (its directory is traversable here) still cannot drive
    /// the daemon: the socket is 0600, root's alone, from the moment gardend says it serves.</summary>
    [InstallFact]
    public async Task A_local_user_cannot_drive_the_daemon_through_its_socket()
    {
        Assert.Equal(0, (await D.CliAsync("ping")).ExitCode);
        Assert.Equal((UnixFileMode)0b110_000_000, Mode(D.Socket));
        var r = await HostUser.NobodyAsync(TestPaths.CliBinary, "--socket", D.Socket, "ping");
        Assert.True(r.ExitCode != 0 && r.Stderr.Contains("Permission denied"), r.ToString());
    }

    private static async Task<byte[]> ReadSharedAsync(string path)
    {
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var ms = new MemoryStream();
        await f.CopyToAsync(ms);
        return ms.ToArray();
    }

    private static string ReadWal(string journal) =>
        File.Exists(journal + "-wal") ? System.Text.Encoding.UTF8.GetString(ReadSharedAsync(journal + "-wal").GetAwaiter().GetResult()) : "";

    [InstallFact]
    public async Task Nobody_cannot_run_a_setuid_root_file_a_container_planted_in_its_rootfs()
    {
        var tool = AttackTool.Path("euid");
        // control: the probe, setuid root where nothing stops it, gives nobody euid 0
        var control = Path.Combine(Control(), "euid");
        File.Copy(tool, control, overwrite: true);
        File.SetUnixFileMode(control, (UnixFileMode)0b100_111_101_101); // 4755
        var works = await HostUser.NobodyAsync(control);
        Assert.True(works.ExitCode == 0 && works.Stdout.Contains("euid=0"), $"the probe must work where nothing stops it: {works}");

        var h = Unique("suid");
        var create = await D.CliAsync("create", "--handle", h, "--bind-mount", $"{Path.GetDirectoryName(tool)}:/attack");
        Assert.True(create.ExitCode == 0, create.ToString());
        try
        {
            var plant = await D.CliAsync("run", h, "--", "sh", "-c", "cp /attack/euid /tmp/euid && chmod 4755 /tmp/euid && ls -ln /tmp/euid");
            Assert.True(plant.ExitCode == 0, plant.ToString());
            Assert.StartsWith("-rwsr-xr-x", plant.Stdout);

            // every host path the file has: through the container's root (Info's path) and in its layer in the depot
            var info = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement;
            var paths = new List<string> { Path.Combine(info.GetProperty("containerPath").GetString()!, "tmp", "euid") };
            paths.AddRange(Directory.EnumerateFiles(Path.Combine(D.StateDir, "depot", h), "euid", new EnumerationOptions
            {
                RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = true,
            }));
            Assert.True(paths.Count >= 2, string.Join(", ", paths));
            foreach (var path in paths.Distinct())
            {
                Assert.True(File.Exists(path), path); // root sees it
                var r = await HostUser.NobodyAsync(path);
                Assert.True(r.ExitCode != 0 && !r.Stdout.Contains("euid=0"), $"{path}: {r}");
            }
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task A_state_dir_an_earlier_build_left_open_is_closed_at_start()
    {
        var d = new Gardend();
        await using var _ = new DaemonGuard(d);
        await d.StartAsync();
        var h = Unique("upgrade");
        Assert.Equal(0, (await d.CliAsync("create", "--handle", h, "--env", Secret)).ExitCode);
        await d.StopAsync();
        // what a build before this one left: 0755 directories, 0644 files
        var journal = Path.Combine(d.StateDir, "journal.db");
        var config = Path.Combine(d.StateDir, "depot", h, "bundle", "config.json");
        foreach (var dir in new[] { d.StateDir, Path.Combine(d.StateDir, "depot"), Path.Combine(d.StateDir, "depot", h),
                     Path.Combine(d.StateDir, "depot", h, "bundle"), Path.Combine(d.StateDir, "sockets") })
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        foreach (var file in new[] { journal, config }.Concat(new[] { "-wal", "-shm" }.Select(s => journal + s).Where(File.Exists)))
            File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100);
        HostUser.Traversable(d.Dir);
        Assert.Equal(0, (await HostUser.NobodyAsync("cat", config)).ExitCode); // open, as it was

        await d.StartAsync();
        try
        {
            Assert.Equal((UnixFileMode)0b111_000_000, Mode(d.StateDir));
            Assert.Equal((UnixFileMode)0b111_000_000, Mode(Path.Combine(d.StateDir, "depot", h)));
            Assert.Equal((UnixFileMode)0b110_000_000, Mode(journal));
            Assert.Equal((UnixFileMode)0b110_000_000, Mode(config));
            var r = await HostUser.NobodyAsync("cat", config);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Equal("active", JsonDocument.Parse((await d.CliAsync("--json", "info", h)).Stdout).RootElement.GetProperty("state").GetString());
        }
        finally { await d.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task A_bind_mount_of_the_state_dir_or_the_api_socket_is_refused_before_anything_is_made()
    {
        // control: a bind mount the container may have does reach the host path
        var allowed = Path.Combine(Control(), "shared");
        Directory.CreateDirectory(allowed);
        await File.WriteAllTextAsync(Path.Combine(allowed, "f"), "reachable\n");
        var ok = Unique("bindok");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", ok, "--bind-mount", $"{allowed}:/mnt")).ExitCode);
        try
        {
            Assert.Equal("reachable\n", (await D.CliAsync("run", ok, "--", "cat", "/mnt/f")).Stdout);
        }
        finally { await D.CliAsync("destroy", ok); }

        var link = Path.Combine(Control(), "innocent");
        if (!File.Exists(link) && !Directory.Exists(link)) File.CreateSymbolicLink(link, D.StateDir);
        foreach (var src in new[] { D.StateDir, Path.Combine(D.StateDir, "sockets"), Path.Combine(D.StateDir, "journal.db"), link,
                     Path.Combine(link, "depot"), D.Socket })
        {
            var h = Unique("bindbad");
            var r = await D.CliAsync("create", "--handle", h, "--bind-mount", $"{src}:/mnt");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("bind mount 1 src", r.Stderr);
            Assert.Contains("only gardend may use", r.Stderr);
            Assert.Empty(Host.Leftovers(D, h));
            Assert.DoesNotContain(h, (await D.CliAsync("list")).Stdout);
        }
    }

    /// <summary>A rootfs is the lower layer of the root its container reads as its own: a rootfs of "/" (or of a parent of
    /// the state dir, or of a path inside it) would give container root the journal (every container's environment),
    /// the other containers' depots and the API socket. Refused naming the rootfs, before anything is made.</summary>
    [InstallFact]
    public async Task A_rootfs_of_the_hosts_root_or_the_state_dir_is_refused_before_anything_is_made()
    {
        var link = Path.Combine(Control(), "innocent-root");
        if (!File.Exists(link) && !Directory.Exists(link)) File.CreateSymbolicLink(link, "/");
        foreach (var rootfs in new[] { "/", link, Path.GetDirectoryName(D.StateDir)!, D.StateDir, Path.Combine(D.StateDir, "depot") })
        {
            var h = Unique("rootbad");
            var r = await D.CliAsync("create", "--handle", h, "--rootfs", rootfs);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("rootfs", r.Stderr);
            Assert.Contains("only gardend may use", r.Stderr);
            Assert.Empty(Host.Leftovers(D, h));
            Assert.DoesNotContain(h, (await D.CliAsync("list")).Stdout);
        }
    }

    /// <summary>Destroys what a failed test left on its own daemon (starting it again if it is down), then disposes it.</summary>
    private sealed class DaemonGuard(Gardend d) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            var list = await d.CliAsync("list");
            if (list.ExitCode != 0)
            {
                try { await d.StartAsync(); list = await d.CliAsync("list"); } catch (Exception) { }
            }
            foreach (var h in list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)) await d.CliAsync("destroy", h);
            await d.DisposeAsync();
        }
    }
}
