using System.Diagnostics;
using System.Text.Json;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>Bind mounts, grace time and the event stream on the real kernel, driven through the CLI.</summary>
public sealed class GraceEventsTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<bool> Exists(string handle) => (await D.CliAsync("info", handle)).ExitCode == 0;

    [InstallFact]
    public async Task A_read_only_mount_is_readable_not_writable_and_a_read_write_one_writes_to_the_host()
    {
        // Shared as a user shares a directory: world-readable (a temp dir is 0700, which container root, an unprivileged
        // host uid, could not enter).
        const UnixFileMode shared = (UnixFileMode)0b111_101_101;
        var ro = TestPaths.NewTempDir("bind-ro");
        var rw = TestPaths.NewTempDir("bind-rw");
        File.SetUnixFileMode(ro, shared);
        File.SetUnixFileMode(rw, shared);
        var h = Unique("bind");
        try
        {
            File.WriteAllText(Path.Combine(ro, "hello.txt"), "from the host\n");
            var create = await D.CliAsync("create", "--handle", h, "--bind-mount", $"{ro}:/mnt/ro", "--bind-mount", $"{rw}:/mnt/rw:rw");
            Assert.True(create.ExitCode == 0, create.ToString());

            Assert.Equal("from the host\n", (await D.CliAsync("run", h, "--", "cat", "/mnt/ro/hello.txt")).Stdout);
            var write = await D.CliAsync("run", h, "--", "sh", "-c", "echo no > /mnt/ro/new.txt");
            Assert.NotEqual(0, write.ExitCode);
            Assert.Contains("Read-only file system", write.Stderr);
            Assert.False(File.Exists(Path.Combine(ro, "new.txt")));

            // read-write, but the host's root owns it: container root is not host root (README says so)
            var denied = await D.CliAsync("run", h, "--", "sh", "-c", "echo no > /mnt/rw/new.txt");
            Assert.NotEqual(0, denied.ExitCode);
            Assert.Contains("Permission denied", denied.Stderr);
            // given to container root's host uid, it is container root's to write
            await Garden.Linux.Process.Command.RunAsync("/bin/chown", ["4294967294:4294967294", rw]);
            var ok = await D.CliAsync("run", h, "--", "sh", "-c", "echo yes > /mnt/rw/new.txt");
            Assert.True(ok.ExitCode == 0, ok.ToString());
            Assert.Equal("yes\n", File.ReadAllText(Path.Combine(rw, "new.txt")));
            Assert.Equal("4294967294", (await Garden.Linux.Process.Command.RunAsync("/usr/bin/stat", ["-c", "%u", Path.Combine(rw, "new.txt")])).Stdout.Trim());

            var info = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement;
            var mounts = info.GetProperty("bindMounts").EnumerateArray().ToList();
            Assert.Equal(2, mounts.Count);
            Assert.True(mounts[0].GetProperty("readOnly").GetBoolean());
            Assert.False(mounts[1].GetProperty("readOnly").GetBoolean());
        }
        finally
        {
            await D.CliAsync("destroy", h);
            Directory.Delete(ro, recursive: true);
            Directory.Delete(rw, recursive: true);
        }
    }

    [InstallFact]
    public async Task A_missing_or_forbidden_bind_mount_is_a_clear_error_and_nothing_is_made()
    {
        var h = Unique("nobind");
        var missing = await D.CliAsync("create", "--handle", h, "--bind-mount", "/nonexistent-garden-test:/mnt");
        Assert.NotEqual(0, missing.ExitCode);
        Assert.Contains("bind mount 1 src", missing.Stderr);
        Assert.Contains("\"/nonexistent-garden-test\" does not exist", missing.Stderr);
        var proc = await D.CliAsync("create", "--handle", h, "--bind-mount", "/tmp:/proc/x");
        Assert.NotEqual(0, proc.ExitCode);
        Assert.Contains("bind mount 1 dst", proc.Stderr);
        Assert.Contains("/proc", proc.Stderr);
        Assert.False(await Exists(h));
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task An_idle_container_is_reaped_after_its_grace_time()
    {
        var h = Unique("idle");
        try
        {
            Assert.Equal(0, (await D.CliAsync("create", "--handle", h, "--grace-time", "1s")).ExitCode);
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (DateTime.UtcNow < deadline && (await D.CliAsync("list")).Stdout.Contains(h)) await Task.Delay(200);
            Assert.DoesNotContain(h, (await D.CliAsync("list")).Stdout);
            // list leaves out a container being destroyed; info still answers for it until the destroy is finished
            while (DateTime.UtcNow < deadline && !(await D.CliAsync("info", h)).Stderr.Contains("unknown handle")) await Task.Delay(100);
            Assert.Contains("unknown handle", (await D.CliAsync("info", h)).Stderr);
            Assert.Empty(Host.Leftovers(D, h));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task An_attached_client_keeps_a_container_past_its_grace_time_and_grace_time_can_be_changed()
    {
        var h = Unique("held");
        try
        {
            Assert.Equal(0, (await D.CliAsync("create", "--handle", h, "--grace-time", "1s")).ExitCode);
            var run = await D.CliAsync("run", h, "--", "sh", "-c", "sleep 3; echo done");
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.Equal("done\n", run.Stdout);
            Assert.True(await Exists(h)); // still there after 3 s with a 1 s grace time (this info restarts its timer)

            Assert.Equal(0, (await D.CliAsync("grace-time", h, "0")).ExitCode);
            await Task.Delay(2500);
            Assert.True(await Exists(h));
            var info = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement;
            Assert.Equal("0", info.GetProperty("graceTimeMs").ToString());

            Assert.Equal(0, (await D.CliAsync("grace-time", h, "500ms")).ExitCode);
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (DateTime.UtcNow < deadline && (await D.CliAsync("list")).Stdout.Contains(h)) await Task.Delay(300);
            Assert.DoesNotContain(h, (await D.CliAsync("list")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Events_shows_created_process_exited_and_destroyed_for_a_handle()
    {
        var h = Unique("ev");
        var other = Unique("evo");
        using var events = D.StartCli("--json", "events", h);
        // Lines read off the test's thread: a read of a pipe does not honour cancellation, a wait on a channel does.
        var lines = System.Threading.Channels.Channel.CreateUnbounded<JsonElement>();
        var reader = Task.Run(async () =>
        {
            while (await events.StandardOutput.ReadLineAsync() is { } line) lines.Writer.TryWrite(JsonDocument.Parse(line).RootElement);
            lines.Writer.TryComplete();
        });
        async Task<JsonElement?> Next(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            try { return await lines.Reader.ReadAsync(cts.Token); }
            catch (Exception e) when (e is OperationCanceledException or System.Threading.Channels.ChannelClosedException) { return null; }
        }
        try
        {
            // The subscription is made when the call reaches the daemon: create until the stream shows the create
            // (a loaded machine may start the CLI slowly); a create it missed is destroyed and made again.
            JsonElement? created = null;
            for (var attempt = 0; attempt < 5 && created is null; attempt++)
            {
                Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
                for (var e = await Next(TimeSpan.FromSeconds(3)); e is not null; e = await Next(TimeSpan.FromSeconds(1)))
                    if (e.Value.GetProperty("kind").GetString() == "created") { created = e; break; }
                if (created is null) Assert.Equal(0, (await D.CliAsync("destroy", h)).ExitCode);
            }
            Assert.True(created is not null, $"no created event for {h} (events exited: {events.HasExited})");
            Assert.Equal(0, (await D.CliAsync("create", "--handle", other)).ExitCode);
            Assert.Equal(7, (await D.CliAsync("run", h, "--id", "seven", "--", "sh", "-c", "exit 7")).ExitCode);
            Assert.Equal(0, (await D.CliAsync("destroy", h)).ExitCode);

            var seen = new List<JsonElement> { created!.Value };
            while (seen.Count < 3 && await Next(TimeSpan.FromSeconds(10)) is { } e) seen.Add(e);
            Assert.Equal(["created", "process exited", "destroyed"], seen.Select(e => e.GetProperty("kind").GetString()));
            Assert.All(seen, e => Assert.Equal(h, e.GetProperty("handle").GetString()));
            Assert.Equal("seven", seen[1].GetProperty("processId").GetString());
            Assert.Equal(7, seen[1].GetProperty("exitCode").GetInt32());
            Assert.False(events.HasExited);
        }
        finally
        {
            if (!events.HasExited) events.Kill();
            await events.WaitForExitAsync();
            await D.CliAsync("destroy", h);
            await D.CliAsync("destroy", other);
        }
    }
}
