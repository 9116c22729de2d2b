using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

public sealed class LifecycleTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    [InstallFact]
    public async Task Ping_and_capacity_answer_with_real_figures()
    {
        var ping = await D.CliAsync("ping");
        Assert.Equal(0, ping.ExitCode);
        var cap = await D.CliAsync("--json", "capacity");
        Assert.Equal(0, cap.ExitCode);
        var json = System.Text.Json.JsonDocument.Parse(cap.Stdout).RootElement;
        var memTotalKb = ulong.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        Assert.Equal(memTotalKb * 1024, ulong.Parse(json.GetProperty("memoryBytes").ToString()));
        Assert.True(ulong.Parse(json.GetProperty("diskBytes").ToString()) > 0);
        // max-containers is 256 by default, but never more than the subnet pool holds: the test daemon's pool is a /24 (64 /30s).
        Assert.Equal(64ul, ulong.Parse(json.GetProperty("maxContainers").ToString()));
    }

    [InstallFact]
    public async Task A_container_that_ends_its_own_init_is_broken_from_then_on_and_no_other_container_notices()
    {
        // root of an ordinary container ends PID 1 (its agent, which SIGTERM ends): everything in it ends with it. Info
        // says so at once (not only after gardend's next restart), journaled; nothing runs in it; destroy cleans it up
        var self = Unique("selfend");
        var other = Unique("bystand");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", self)).ExitCode);
        Assert.Equal(0, (await D.CliAsync("create", "--handle", other)).ExitCode);
        try
        {
            Assert.Equal("active", System.Text.Json.JsonDocument.Parse((await D.CliAsync("--json", "info", self)).Stdout).RootElement.GetProperty("state").GetString());
            await D.CliAsync("run", self, "--", "/bin/sh", "-c", "kill -TERM 1; sleep 5");
            System.Text.Json.JsonElement info = default;
            for (var i = 0; i < 50; i++)
            {
                var r = await D.CliAsync("--json", "info", self);
                if (r.ExitCode == 0 && (info = System.Text.Json.JsonDocument.Parse(r.Stdout).RootElement).GetProperty("state").GetString() == "broken") break;
                await Task.Delay(100);
            }
            Assert.Equal("broken", info.GetProperty("state").GetString());
            Assert.Contains(info.GetProperty("events").EnumerateArray(), e => e.GetString()!.Contains("container init gone"));
            var run = await D.CliAsync("run", self, "--", "/bin/true");
            Assert.NotEqual(0, run.ExitCode);
            Assert.Contains("broken", run.Stderr);
            Assert.Contains(self, (await D.CliAsync("list")).Stdout.Split('\n'));

            var bystander = await D.CliAsync("run", other, "--", "/bin/echo", "still here");
            Assert.Equal("still here", bystander.Stdout.Trim());
            Assert.Equal("active", System.Text.Json.JsonDocument.Parse((await D.CliAsync("--json", "info", other)).Stdout).RootElement.GetProperty("state").GetString());
            Assert.Equal(0, (await D.CliAsync("destroy", self)).ExitCode);
            Assert.Empty(Host.Leftovers(D, self));
        }
        finally
        {
            await D.CliAsync("destroy", self);
            await D.CliAsync("destroy", other);
        }
    }

    [InstallFact]
    public async Task Create_info_list_destroy_and_nothing_is_left()
    {
        var handle = Unique("life");
        var create = await D.CliAsync("create", "--handle", handle, "--property", "owner=e2e", "--env", "A=1");
        Assert.True(create.ExitCode == 0, create.ToString());
        Assert.Equal(handle, create.Stdout.Trim());

        var info = await D.CliAsync("--json", "info", handle);
        Assert.Equal(0, info.ExitCode);
        var json = System.Text.Json.JsonDocument.Parse(info.Stdout).RootElement;
        Assert.Equal("active", json.GetProperty("state").GetString());
        Assert.Equal("e2e", json.GetProperty("properties").GetProperty("owner").GetString());
        Assert.Contains(handle, (await D.CliAsync("list")).Stdout.Split('\n'));
        Assert.NotEmpty(Host.Leftovers(D, handle, settle: false)); // while it lives, it holds a mount, runc state, a cgroup

        var destroy = await D.CliAsync("destroy", handle);
        Assert.True(destroy.ExitCode == 0, destroy.ToString());
        Assert.Empty(Host.Leftovers(D, handle));
        Assert.DoesNotContain(handle, (await D.CliAsync("list")).Stdout.Split('\n'));
        var again = await D.CliAsync("info", handle);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("unknown handle", again.Stderr);
    }

    [InstallFact]
    public async Task A_generated_handle_is_printed()
    {
        var create = await D.CliAsync("create");
        Assert.Equal(0, create.ExitCode);
        var handle = create.Stdout.Trim();
        Assert.Matches("^[a-z0-9]{11}$", handle);
        Assert.Equal(0, (await D.CliAsync("destroy", handle)).ExitCode);
    }

    [InstallFact]
    public async Task List_filters_by_properties()
    {
        var tag = Guid.NewGuid().ToString("N")[..8];
        var a = Unique("la");
        var b = Unique("lb");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", a, "--property", $"tag={tag}", "--property", "role=web")).ExitCode);
        Assert.Equal(0, (await D.CliAsync("create", "--handle", b, "--property", $"tag={tag}", "--property", "role=db")).ExitCode);
        try
        {
            var both = await D.CliAsync("list", "--property", $"tag={tag}");
            Assert.Equal(new[] { a, b }.Order(), both.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());
            var web = await D.CliAsync("list", "--property", $"tag={tag}", "--property", "role=web");
            Assert.Equal(a, web.Stdout.Trim());
        }
        finally
        {
            await D.CliAsync("destroy", a, b);
        }
    }

    [InstallFact]
    public async Task Properties_set_get_rm()
    {
        var h = Unique("prop");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            Assert.Equal(0, (await D.CliAsync("property", h, "set", "color", "blue")).ExitCode);
            Assert.Equal("blue", (await D.CliAsync("property", h, "get", "color")).Stdout.Trim());
            Assert.Contains("color=blue", (await D.CliAsync("property", h)).Stdout);
            Assert.Equal(0, (await D.CliAsync("property", h, "rm", "color")).ExitCode);
            var missing = await D.CliAsync("property", h, "get", "color");
            Assert.NotEqual(0, missing.ExitCode);
            Assert.Contains("color", missing.Stderr);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Bad_create_input_gets_clear_errors_and_leaves_nothing()
    {
        var h = Unique("dup");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            var dup = await D.CliAsync("create", "--handle", h);
            Assert.Equal(1, dup.ExitCode);
            Assert.Contains($"Handle '{h}' already in use", dup.Stderr);   // Garden's words

            var bad = await D.CliAsync("create", "--handle", "no/slashes");
            Assert.Equal(1, bad.ExitCode);
            Assert.Contains("handle", bad.Stderr);
            Assert.Contains("no/slashes", bad.Stderr);

            var rootless = Unique("rootless");
            var rootfs = await D.CliAsync("create", "--handle", rootless, "--rootfs", "/no/such/dir");
            Assert.Equal(1, rootfs.ExitCode);
            Assert.Contains("/no/such/dir", rootfs.Stderr);
            Assert.Empty(Host.Leftovers(D, rootless));
            Assert.DoesNotContain(rootless, (await D.CliAsync("list")).Stdout);

            // the daemon and the first container carry on
            Assert.Equal("still here\n", (await D.CliAsync("run", h, "--", "echo", "still here")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Unknown_handles_are_NotFound_everywhere()
    {
        foreach (var args in new[] { new[] { "info", "ghost" }, ["destroy", "ghost"], ["stop", "ghost"], ["run", "ghost", "--", "true"],
                     ["attach", "ghost", "p"], ["signal", "ghost", "p", "TERM"], ["property", "ghost"] })
        {
            var r = await D.CliAsync(args);
            Assert.NotEqual(0, r.ExitCode);
            Assert.Contains("unknown handle: ghost", r.Stderr);
        }
    }

    [InstallFact]
    public async Task Stop_keeps_the_container_but_refuses_new_processes()
    {
        var h = Unique("stop");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            var id = (await D.CliAsync("run", h, "--detach", "--", "sleep", "100")).Stdout.Trim();
            Assert.Equal(0, (await D.CliAsync("stop", h)).ExitCode);
            var attach = await D.CliAsync("attach", h, id);
            Assert.Equal(143, attach.ExitCode); // TERM
            var info = await D.CliAsync("--json", "info", h);
            Assert.Equal("stopped", System.Text.Json.JsonDocument.Parse(info.Stdout).RootElement.GetProperty("state").GetString());
            var run = await D.CliAsync("run", h, "--", "true");
            Assert.NotEqual(0, run.ExitCode);
            Assert.Contains("stopped", run.Stderr);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task Stop_kill_kills_at_once_even_a_process_that_ignores_TERM()
    {
        var h = Unique("kill");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            var id = (await D.CliAsync("run", h, "--detach", "--", "sh", "-c", "trap '' TERM; sleep 100")).Stdout.Trim();
            var started = DateTime.UtcNow;
            Assert.Equal(0, (await D.CliAsync("stop", h, "--kill")).ExitCode);
            Assert.Equal(137, (await D.CliAsync("attach", h, id)).ExitCode);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Destroy_of_a_container_with_running_processes_releases_everything()
    {
        var h = Unique("busy");
        Assert.Equal(0, (await D.CliAsync("create", "--handle", h)).ExitCode);
        await D.CliAsync("run", h, "--detach", "--", "sleep", "1000");
        await D.CliAsync("run", h, "--detach", "--", "sh", "-c", "sleep 1000 & sleep 1000");
        var destroy = await D.CliAsync("destroy", h);
        Assert.True(destroy.ExitCode == 0, destroy.ToString());
        Assert.Empty(Host.Leftovers(D, h));
    }
}
