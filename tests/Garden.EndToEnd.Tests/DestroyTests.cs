using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>A Destroy answers once nothing runs in the container and its handle is free; its rootfs, depot, rules and
/// network are released right after, journaled: the real gardend, its CLI and the kernel.</summary>
public sealed class DestroyTests
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    [InstallFact]
    public async Task Destroy_then_create_of_the_same_handle_at_once_works_every_time_and_leaves_nothing()
    {
        var d = new Gardend();
        await d.StartAsync();
        var h = Unique("again");
        try
        {
            for (var i = 0; i < 8; i++)
            {
                Ok(await d.CliAsync("create", "--handle", h, "--net-in", "0:8080"));
                Ok(await d.CliAsync("run", h, "--detach", "--", "sleep", "1000"));
                Ok(await d.CliAsync("destroy", h));
                // answered: nothing runs in it, runc forgot it, and nothing lists it
                Assert.DoesNotContain(h, (await Command.RunAsync("/usr/sbin/runc", ["list", "-q"])).Stdout);
                Assert.DoesNotContain(h, (await d.CliAsync("list")).Stdout);
                Assert.Contains("unknown handle", (await d.CliAsync("info", h)).Stderr);
            }
            // the last one is whole and works
            Ok(await d.CliAsync("create", "--handle", h));
            var run = await d.CliAsync("run", h, "--", "sh", "-c", "echo alive > /tmp/x && cat /tmp/x");
            Ok(run);
            Assert.Equal("alive\n", run.Stdout);
            Ok(await d.CliAsync("destroy", h));
            Assert.Empty(Host.Leftovers(d, h));
            Assert.Empty(await Kernel.ContainerLeftovers(d.NetworkPrefix));
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.DisposeAsync();
            await Kernel.Scrub(d.NetworkPrefix);
        }
    }

    [InstallFact]
    public async Task A_daemon_killed_right_after_a_destroy_answered_finishes_the_release_after_restart()
    {
        // garden.fault.crash-at: gardend kills itself (as kill -9) once the handle is free and the release is to start
        var d = new Gardend("garden.fault.crash-at = \"release-started\"");
        await d.StartAsync();
        var h = Unique("cut");
        try
        {
            Ok(await d.CliAsync("create", "--handle", h, "--net-in", "0:8080"));
            Ok(await d.CliAsync("run", h, "--detach", "--", "sleep", "1000"));
            await d.CliAsync("destroy", h); // the answer may or may not be out before the daemon dies
            await d.WaitForExitAsync();
            Assert.DoesNotContain(h, (await Command.RunAsync("/usr/sbin/runc", ["list", "-q"])).Stdout); // nothing runs

            d.Configure("");
            await d.StartAsync();
            Assert.Contains("unknown handle", (await d.CliAsync("info", h)).Stderr);
            Assert.Empty(Host.Leftovers(d, h));
            Assert.Empty(await Kernel.ContainerLeftovers(d.NetworkPrefix));
            Assert.Contains("finishing the release of 1 container(s)", d.Log);
            Ok(await d.CliAsync("create", "--handle", h)); // the handle is free again
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.DisposeAsync();
            Assert.Empty(Host.Leftovers(d, h));
            await Kernel.Scrub(d.NetworkPrefix);
        }
    }

    [InstallFact]
    public async Task A_gardend_stopped_right_after_destroys_answered_releases_everything_before_it_exits()
    {
        // systemctl stop after destroys: the daemon is stopped for good, so nothing may be left for a next start
        var d = new Gardend();
        await d.StartAsync();
        var handles = Enumerable.Range(0, 3).Select(_ => Unique("stop")).ToList();
        try
        {
            foreach (var h in handles)
            {
                Ok(await d.CliAsync("create", "--handle", h, "--net-in", "0:8080", "--disk", "64M"));
                Ok(await d.CliAsync("run", h, "--detach", "--", "sleep", "1000"));
            }
            var destroys = handles.Select(h => d.CliAsync("destroy", h)).ToList();
            await Task.WhenAny(destroys); // SIGTERM at the first answer: the others may still be in flight
            await d.StopAsync();
            Assert.Equal(0, d.ExitCode);
            foreach (var r in await Task.WhenAll(destroys)) Ok(r);

            // gone from the host before gardend exited, the shared chains too (no container has rules left)
            foreach (var h in handles) Assert.Empty(Host.Leftovers(d, h, settle: false));
            Assert.Empty(await Kernel.Leftovers(d.NetworkPrefix));
            Assert.DoesNotContain(File.ReadAllText("/proc/self/mountinfo").Split('\n'), l => l.Contains($" {d.Dir}/", StringComparison.Ordinal));
            foreach (var backing in Directory.GetDirectories("/sys/block", "loop*").Select(b => Path.Combine(b, "loop", "backing_file")).Where(File.Exists))
                Assert.DoesNotContain(d.Dir, File.ReadAllText(backing));
            Assert.Contains("no container has firewall rules left", d.Log);

            // and journaled as finished: the next start has no release to finish
            await d.StartAsync();
            Assert.DoesNotContain("finishing the release", d.Log);
        }
        finally
        {
            foreach (var h in handles) await d.CliAsync("destroy", h);
            await d.DisposeAsync();
            await Kernel.Scrub(d.NetworkPrefix);
        }
    }
}
