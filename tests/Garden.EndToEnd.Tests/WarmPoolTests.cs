using System.Diagnostics;
using System.Text.RegularExpressions;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>The warm pool (garden.warm-pool.size) on the real kernel: a Create served by a container made ahead is what
/// a user sees of a normal one, the pool refills, SIGTERM leaves nothing of it, a kill -9 keeps it for the next start (checked, never handed
/// out twice), a start with size 0 gives it back, and a Create the pool cannot serve is made the normal way. Each test has a daemon of its own
/// (every other test's daemon runs with no pool).</summary>
public sealed class WarmPoolTests
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static Gardend PoolDaemon(int size) => new($$"""garden { warm-pool { size = {{size}} } }""");

    /// <summary>Waits until gardend's log says <paramref name="count"/> pool entries were made since the start.</summary>
    private static async Task EntriesReady(Gardend d, int count)
    {
        for (var waited = 0; Regex.Matches(d.Log, @"warm pool: entry ready").Count < count; waited += 50)
        {
            if (waited >= 30_000) throw new TimeoutException($"not {count} warm pool entries ready after 30 s:\n{d.Log}");
            await Task.Delay(50);
        }
    }

    /// <summary>The pool entry the last Create of the handle took (from gardend's log), or null when none took one.</summary>
    private static string? EntryOf(Gardend d, string handle) =>
        Regex.Matches(d.Log, $@"\[container {Regex.Escape(handle)}\] taking warm pool entry (_pool-\d+)").LastOrDefault()?.Groups[1].Value;

    /// <summary>Every pool entry name gardend's log mentions.</summary>
    private static HashSet<string> EntriesNamed(Gardend d) => [.. Regex.Matches(d.Log, @"_pool-\d+").Select(m => m.Value)];

    /// <summary>True when runc runs the container named <paramref name="name"/>.</summary>
    private static async Task<bool> Runs(string name) =>
        (await Garden.Linux.Process.Command.RunAsync("/usr/sbin/runc", ["state", name])).Stdout.Contains("\"running\"");

    /// <summary>Waits until gardend's log says <paramref name="count"/> entries were kept across restarts.</summary>
    private static async Task EntriesKept(Gardend d, int count)
    {
        for (var waited = 0; Regex.Matches(d.Log, "warm pool: entry kept across the restart").Count < count; waited += 50)
        {
            if (waited >= 10_000) throw new TimeoutException($"not {count} warm pool entries kept after 10 s:\n{d.Log}");
            await Task.Delay(50);
        }
    }

    private static async Task<string> Out(Gardend d, params string[] args)
    {
        var r = await d.CliAsync(args);
        Assert.True(r.ExitCode == 0, $"garden {string.Join(' ', args)}: {r}");
        return r.Stdout;
    }

    /// <summary>Links, namespaces and firewall rules named with the daemon's network prefix (its containers' and pool's).</summary>
    private static List<string> NetworkObjects(Gardend d)
    {
        var found = new List<string>();
        found.AddRange(Run("ip", "-o", "link", "show").Split('\n').Where(l => l.Contains($": {d.NetworkPrefix}")).Select(l => $"link {l}"));
        found.AddRange(Run("ip", "netns", "list").Split('\n').Where(l => l.StartsWith(d.NetworkPrefix, StringComparison.Ordinal)).Select(l => $"netns {l}"));
        found.AddRange(Run("iptables-save").Split('\n').Where(l => l.Contains(d.NetworkPrefix + "-") && l.StartsWith("-A", StringComparison.Ordinal)).Select(l => $"rule {l}"));
        return found;
    }

    private static string Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    private static async Task<List<string>> LeftoversOfEntries(Gardend d, IEnumerable<string> names)
    {
        var found = new List<string>();
        foreach (var name in names) found.AddRange(Host.Leftovers(d, name));
        for (var waited = 0; NetworkObjects(d).Count > 0 && waited < 5000; waited += 100) await Task.Delay(100);
        found.AddRange(NetworkObjects(d));
        return found;
    }

    [InstallFact]
    public async Task A_pooled_create_is_what_a_user_sees_of_a_normal_one()
    {
        await using var d = PoolDaemon(1);
        await d.StartAsync();
        await EntriesReady(d, 1);
        var pooled = Unique("pooled");
        var normal = Unique("normal");
        try
        {
            Ok(await d.CliAsync("create", "--handle", pooled, "--memory", "96M", "--pids", "64", "--net-in", "0:8080", "--property", "a=b", "--grace-time", "1h", "--env", "X=1"));
            var entry = EntryOf(d, pooled);
            Assert.NotNull(entry);
            // the same spec made the normal way (a bind mount makes it one the pool does not serve)
            Ok(await d.CliAsync("create", "--handle", normal, "--memory", "96M", "--pids", "64", "--net-in", "0:8080", "--property", "a=b", "--grace-time", "1h", "--env", "X=1",
                "--bind-mount", "/etc:/mnt/etc:ro"));
            Assert.Null(EntryOf(d, normal));

            var memoryLimits = new List<string>();
            foreach (var h in new[] { pooled, normal })
            {
                Assert.Equal(h, (await Out(d, "run", h, "--", "hostname")).Trim());
                Assert.Equal(h, (await Out(d, "run", h, "--", "cat", "/proc/sys/kernel/hostname")).Trim());
                var info = Net.Info(await d.CliAsync("--json", "info", h));
                var hosts = await Out(d, "run", h, "--", "cat", "/etc/hosts");
                Assert.Matches($@"(?m)^{Regex.Escape(info.ContainerIp)} {Regex.Escape(h)}$", hosts);
                Assert.DoesNotContain("_pool", hosts);
                Assert.Equal("b", (await Out(d, "property", h, "get", "a")).Trim());
                // what the container sees of its memory limit (its cgroup: the limit and the agent's allowance)
                memoryLimits.Add((await Out(d, "run", h, "--", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")).Trim());
                Assert.Contains(h, (await Out(d, "list")).Split('\n'));
                Assert.Contains("uid=0(root)", await Out(d, "run", h, "--", "id"));
                Assert.Contains("X=1", (await Out(d, "run", h, "--", "env")).Split('\n'));
                var port = Assert.Single(info.Ports);
                Ok(await d.CliAsync("run", h, "--detach", "--", "nc", "-ll", "-p", "8080", "-e", "echo", $"hello from {h}"));
                var reply = await Net.Eventually(() => Net.Exchange("127.0.0.1", port.Host, ""), r => r.Contains(h));
                Assert.Equal($"hello from {h}\n", reply);
                Assert.Contains("memory", await Out(d, "metrics", h));
            }
            Assert.Equal(memoryLimits[1], memoryLimits[0]);
            Assert.True(ulong.Parse(memoryLimits[0]) < 1UL << 30, memoryLimits[0]);
            // the limits as Garden reports them, and Info but for what names the container, are the same
            Assert.Equal((await Out(d, "limit", normal)).Replace(normal, "H"), (await Out(d, "limit", pooled)).Replace(pooled, "H"));
            // nothing of the pool is listed as a user's container
            Assert.DoesNotContain("_pool", await Out(d, "list"));

            Ok(await d.CliAsync("destroy", pooled));
            Assert.Empty(Host.Leftovers(d, entry!));
            Assert.Empty(Host.Leftovers(d, pooled));
        }
        finally
        {
            await d.CliAsync("destroy", pooled);
            await d.CliAsync("destroy", normal);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
    }

    [InstallFact]
    public async Task The_pool_refills_and_SIGTERM_leaves_nothing_of_it_and_a_start_with_size_0_gives_back_a_kept_one()
    {
        await using var d = PoolDaemon(2);
        await d.StartAsync();
        await EntriesReady(d, 2);
        var h = Unique("refill");
        try
        {
            Ok(await d.CliAsync("create", "--handle", h));
            Assert.NotNull(EntryOf(d, h));
            await EntriesReady(d, 3); // the one taken is made again
            Assert.Equal([h], (await Out(d, "list")).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally { Ok(await d.CliAsync("destroy", h)); }
        await d.StopAsync(); // SIGTERM: the pool is gardend's own and goes with it
        var entries = EntriesNamed(d);
        Assert.True(entries.Count >= 3, d.Log);
        foreach (var entry in entries) Assert.False(await Runs(entry), $"{entry} still runs:\n{d.Log}");
        Assert.Empty(await LeftoversOfEntries(d, entries));
        Assert.Empty(Host.OrphanedHolders());

        // a pool kept across a kill -9 is given back by a start with size 0
        await d.StartAsync();
        await EntriesReady(d, 5);
        var kept = EntriesNamed(d).Except(entries).ToList();
        Assert.Equal(2, kept.Count);
        await d.StopAsync(kill: true);
        foreach (var entry in kept) Assert.True(await Runs(entry), $"{entry} was not kept:\n{d.Log}");
        d.Configure("garden { warm-pool { size = 0 } }");
        await d.StartAsync();
        Assert.Matches(@"warm pool an earlier gardend left: keeping 0 \(once checked\), releasing 2", d.Log);
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
        Assert.Empty(Host.OrphanedHolders());
    }

    [InstallFact]
    public async Task Kill_9_and_a_restart_keep_the_untaken_entries_and_never_hand_one_out_twice()
    {
        await using var d = PoolDaemon(2);
        await d.StartAsync();
        await EntriesReady(d, 2);
        var first = Unique("before");
        var handles = new List<string> { first };
        try
        {
            Ok(await d.CliAsync("create", "--handle", first, "--memory", "80M"));
            var taken = EntryOf(d, first)!;
            Assert.NotNull(taken);
            await EntriesReady(d, 3);
            var untaken = EntriesNamed(d).Where(n => n != taken).ToHashSet();
            Assert.Equal(2, untaken.Count);
            await d.StopAsync(kill: true);

            await d.StartAsync();
            // the container taken before the crash is reattached, still itself
            Assert.Equal(first, (await Out(d, "run", first, "--", "hostname")).Trim());
            Assert.True(ulong.Parse((await Out(d, "run", first, "--", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")).Trim()) < 1UL << 30);
            await EntriesKept(d, 2);
            // the kept entries serve the next Creates, each once; then the pool is made again and serves as before
            var served = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                var h = Unique($"after{i}");
                handles.Add(h);
                if (i == 2) await EntriesReady(d, 4);
                Ok(await d.CliAsync("create", "--handle", h));
                served.Add(EntryOf(d, h) ?? throw new Xunit.Sdk.XunitException($"{h} was not served from the pool:\n{d.Log}"));
                Assert.Equal(h, (await Out(d, "run", h, "--", "hostname")).Trim());
            }
            Assert.Equal(untaken, served.Take(2).ToHashSet());
            Assert.DoesNotContain(served[2], untaken.Append(taken));
            Assert.Equal(served.Count, served.Distinct().Count());
            Assert.Equal(first, (await Out(d, "run", first, "--", "hostname")).Trim());
        }
        finally
        {
            foreach (var h in handles) await d.CliAsync("destroy", h);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
        Assert.Empty(Host.OrphanedHolders());
    }

    [InstallTheory]
    [InlineData("create-registered")] // the registration took the entry; the container journaled nothing
    [InlineData("create-take")]       // mid-take: renamed, nothing else applied
    public async Task A_daemon_killed_while_a_create_takes_an_entry_leaves_nothing_of_it_after_restart(string point)
    {
        const string pool = "garden { warm-pool { size = 2 } }";
        await using var d = new Gardend($"{pool}\ngarden.fault.crash-at = \"{point}\"");
        await d.StartAsync();
        await EntriesReady(d, 2);
        var h = Unique("crash");
        var next = Unique("next");
        try
        {
            Assert.NotEqual(0, (await d.CliAsync("create", "--handle", h)).ExitCode);
            await d.WaitForExitAsync();
            // the Create took the oldest ready entry; the other stays in the pool
            var entries = EntriesNamed(d).OrderBy(n => long.Parse(n[6..])).ToList();
            Assert.Equal(2, entries.Count);
            var (taken, untaken) = (entries[0], entries[1]);

            d.Configure(pool);
            await d.StartAsync();
            Assert.Contains("unknown handle", (await d.CliAsync("info", h)).Stderr);
            // the entry the Create had taken is gone, never handed out again; the untaken one is kept and serves
            Assert.Empty(Host.Leftovers(d, taken));
            Assert.DoesNotContain(taken, (await Garden.Linux.Process.Command.RunAsync("/usr/sbin/runc", ["list", "-q"])).Stdout);
            Assert.Empty(Host.OrphanedHolders());
            await EntriesKept(d, 1);
            Ok(await d.CliAsync("create", "--handle", h)); // the handle is free again
            Assert.Equal(untaken, EntryOf(d, h));
            Assert.Equal(h, (await Out(d, "run", h, "--", "hostname")).Trim());
            await EntriesReady(d, 3);
            Ok(await d.CliAsync("create", "--handle", next));
            Assert.DoesNotContain(EntryOf(d, next), entries);
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.CliAsync("destroy", next);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
    }

    [InstallFact]
    public async Task An_entry_whose_agent_died_in_the_pool_is_made_anew_for_the_create_that_takes_it()
    {
        await using var d = PoolDaemon(1);
        await d.StartAsync();
        await EntriesReady(d, 1);
        var entry = Assert.Single(EntriesNamed(d));
        var state = await Garden.Linux.Process.Command.RunAsync("/usr/sbin/runc", ["state", entry]);
        var pid = System.Text.Json.JsonDocument.Parse(state.Stdout).RootElement.GetProperty("pid").GetInt32();
        Run("kill", "-9", pid.ToString()); // the entry's agent (its init) dies while pooled
        var h = Unique("revived");
        try
        {
            Ok(await d.CliAsync("create", "--handle", h));
            Assert.Equal(entry, EntryOf(d, h));
            Assert.Contains($"warm pool entry {entry} no longer runs", d.Log);
            Assert.Equal(h, (await Out(d, "run", h, "--", "hostname")).Trim());
            var info = Net.Info(await d.CliAsync("--json", "info", h));
            Assert.Matches($@"(?m)^{Regex.Escape(info.ContainerIp)} {Regex.Escape(h)}$", await Out(d, "run", h, "--", "cat", "/etc/hosts"));
        }
        finally { await d.CliAsync("destroy", h); }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
        Assert.Empty(Host.OrphanedHolders());
    }

    [InstallFact]
    public async Task A_create_the_pool_cannot_serve_is_made_the_normal_way()
    {
        await using var d = PoolDaemon(1);
        await d.StartAsync();
        await EntriesReady(d, 1);
        string[][] ineligible =
        [
            ["--privileged"],
            ["--disk", "64M"],
            ["--bind-mount", "/etc:/mnt/etc:ro"],
            ["--network", "10.252.250.0/29"],
        ];
        var handles = new List<string>();
        try
        {
            foreach (var args in ineligible)
            {
                var h = Unique("normal");
                handles.Add(h);
                Ok(await d.CliAsync(["create", "--handle", h, .. args]));
                Assert.Null(EntryOf(d, h));
                Assert.Equal(h, (await Out(d, "run", h, "--", "hostname")).Trim());
            }
            // the entry is still there for a Create it can serve
            var pooled = Unique("pooled");
            handles.Add(pooled);
            Ok(await d.CliAsync("create", "--handle", pooled));
            Assert.NotNull(EntryOf(d, pooled));
        }
        finally
        {
            foreach (var h in handles) await d.CliAsync("destroy", h);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
    }

    /// <summary>Attack: a container taken from the pool looks for what another pool entry or the user of an earlier
    /// entry left: a file in its root, its processes, its hostname. Entries are never reused after a user had one.</summary>
    [InstallFact]
    public async Task A_pooled_container_sees_nothing_of_another_entry_or_of_an_earlier_user()
    {
        await using var d = PoolDaemon(2);
        await d.StartAsync();
        await EntriesReady(d, 2);
        var victim = Unique("victim");
        var attacker = Unique("attacker");
        try
        {
            Ok(await d.CliAsync("create", "--handle", victim));
            var victimEntry = EntryOf(d, victim);
            var token = Guid.NewGuid().ToString("N");
            Ok(await d.CliAsync("run", victim, "--", "sh", "-c", $"echo {token} > /tmp/left; echo {token} > /left"));
            Ok(await d.CliAsync("run", victim, "--detach", "--", "sleep", "1000"));
            Ok(await d.CliAsync("destroy", victim));
            await Host.ReleaseFinished(d, victim);
            await EntriesReady(d, 3);

            Ok(await d.CliAsync("create", "--handle", attacker));
            var attackerEntry = EntryOf(d, attacker);
            Assert.NotNull(attackerEntry);
            Assert.NotEqual(victimEntry, attackerEntry); // never reused
            var looked = await d.CliAsync("run", attacker, "--", "sh", "-c",
                "cat /tmp/left /left 2>/dev/null; ls / /tmp; ps -o pid,args; hostname; cat /etc/hosts");
            Ok(looked);
            Assert.DoesNotContain(token, looked.Stdout);
            Assert.DoesNotContain("sleep", looked.Stdout);
            Assert.DoesNotContain(victim, looked.Stdout);
            Assert.DoesNotContain("_pool", looked.Stdout);
            // the other entry, still in the pool, runs only its agent: nothing of the attacker's is in it, and the
            // attacker's pid namespace holds only its own
            var ps = looked.Stdout.Split('\n').Where(l => Regex.IsMatch(l, @"^\s*\d+\s")).ToList();
            Assert.All(ps, l => Assert.Matches(@"/.garden/agent|sh -c|ps -o", l));
        }
        finally
        {
            await d.CliAsync("destroy", victim);
            await d.CliAsync("destroy", attacker);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
    }

    /// <summary>Attack: env is applied per Create on a pooled container, so a Create's env must reach its processes and
    /// nothing else: a pooled container's processes (a Run, a detached one, one with its own env, a pea-less shell
    /// reading what the container's init holds) see exactly the container's env merged with the Run's, and nothing of
    /// another pooled container's secret, nor of gardend's own environment.</summary>
    [InstallFact]
    public async Task A_pooled_containers_processes_see_exactly_its_creates_env_and_nothing_of_anothers()
    {
        await using var d = PoolDaemon(2);
        await d.StartAsync();
        await EntriesReady(d, 2);
        var owner = Unique("secret");
        var other = Unique("other");
        var secret = Guid.NewGuid().ToString("N");
        try
        {
            Ok(await d.CliAsync("create", "--handle", owner, "--env", $"SECRET={secret}", "--env", "SHARED=owner"));
            Ok(await d.CliAsync("create", "--handle", other, "--env", "SHARED=other"));
            Assert.NotNull(EntryOf(d, owner));
            Assert.NotNull(EntryOf(d, other));

            static string[] Vars(string env) => [.. env.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=')[0]).Order()];
            var ownerEnv = await Out(d, "run", owner, "--", "env");
            Assert.Contains($"SECRET={secret}", ownerEnv.Split('\n'));
            Assert.Contains("SHARED=owner", ownerEnv.Split('\n'));
            // exactly the container's env and what the agent adds for any process (HOME, USER, PATH): the same set of
            // names as a container made the normal way gets
            Assert.Equal(["HOME", "PATH", "SECRET", "SHARED", "USER"], Vars(ownerEnv));

            // the other pooled container: its own env only; nothing of the owner's, in a Run, in a Run with env of its
            // own, in what its init (the agent) holds, or in a detached process's environment
            var otherEnv = await Out(d, "run", other, "--", "env");
            Assert.Equal(["HOME", "PATH", "SHARED", "USER"], Vars(otherEnv));
            Assert.Contains("SHARED=other", otherEnv.Split('\n'));
            Assert.Contains("RUN=1", (await Out(d, "run", other, "--env", "RUN=1", "--", "env")).Split('\n'));
            Ok(await d.CliAsync("run", other, "--detach", "--", "sleep", "1000"));
            var looked = await Out(d, "run", other, "--", "sh", "-c",
                "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null; done; cat /proc/1/cmdline");
            Assert.DoesNotContain(secret, looked);
            Assert.DoesNotContain("SHARED=owner", looked);
            Assert.DoesNotContain("_pool", looked);
            // nothing of gardend's own environment (the test's) reaches either
            foreach (var env in new[] { ownerEnv, otherEnv, looked })
                Assert.DoesNotContain("DOTNET_", env);
        }
        finally
        {
            await d.CliAsync("destroy", owner);
            await d.CliAsync("destroy", other);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
    }

    /// <summary>A pooled container is found by its handle where any container is (Info's path, a symlink to the entry's
    /// root made at take and gone with the container), and the pool is in the metrics: its size, entries, ready ones, and
    /// the Creates it served, could not serve (empty) or was not asked to (ineligible).</summary>
    [InstallFact]
    public async Task A_pooled_container_is_found_by_its_handle_and_the_pool_is_in_the_metrics()
    {
        var port = RemoteDaemonFixture.FreePort();
        await using var d = new Gardend($$"""
            garden { warm-pool { size = 1 } }
            garden.metrics.address = "127.0.0.1:{{port}}"
            """);
        await d.StartAsync();
        await EntriesReady(d, 1);
        async Task<double> Sample(string series)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var scrape = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
            var line = scrape.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal))
                ?? throw new Xunit.Sdk.XunitException($"no sample {series} in the scrape:\n{scrape}");
            return double.Parse(line[(series.Length + 1)..].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.Equal(1, await Sample("garden_warm_pool{kind=\"size\"}"));
        Assert.Equal(1, await Sample("garden_warm_pool{kind=\"entries\"}"));
        Assert.Equal(1, await Sample("garden_warm_pool{kind=\"ready\"}"));
        Assert.Equal(0, await Sample("garden_warm_pool_creates_total{outcome=\"pooled\"}"));

        var pooled = Unique("byhandle");
        var second = Unique("second");
        var privileged = Unique("priv");
        var alias = Path.Combine(d.MountDir, pooled);
        try
        {
            Ok(await d.CliAsync("create", "--handle", pooled));
            Assert.NotNull(EntryOf(d, pooled));
            Ok(await d.CliAsync("create", "--handle", second));
            Ok(await d.CliAsync("create", "--handle", privileged, "--privileged"));
            Assert.Null(EntryOf(d, privileged));

            // Info's path names the handle, and it is the container's root
            var path = Regex.Match(await Out(d, "info", pooled), @"(?m)^path:\s+(\S+)$").Groups[1].Value;
            Assert.Equal(Path.Combine(d.MountDir, pooled, "rootfs"), path);
            var token = Guid.NewGuid().ToString("N");
            Ok(await d.CliAsync("run", pooled, "--", "sh", "-c", $"echo {token} > /tmp/mine"));
            Assert.Equal(token, File.ReadAllText(Path.Combine(path, "tmp", "mine")).Trim());
            Assert.Equal(Path.Combine(d.MountDir, privileged, "rootfs"),
                Regex.Match(await Out(d, "info", privileged), @"(?m)^path:\s+(\S+)$").Groups[1].Value);

            // one took the entry; the other came while the next was being made (empty) or took it (pooled)
            Assert.Equal(2, await Sample("garden_warm_pool_creates_total{outcome=\"pooled\"}") + await Sample("garden_warm_pool_creates_total{outcome=\"empty\"}"));
            Assert.True(await Sample("garden_warm_pool_creates_total{outcome=\"pooled\"}") >= 1);
            Assert.Equal(1, await Sample("garden_warm_pool_creates_total{outcome=\"ineligible\"}"));

            Ok(await d.CliAsync("destroy", pooled));
            await Host.ReleaseFinished(d, pooled);
            Assert.False(Directory.Exists(alias) || File.Exists(alias) || new FileInfo(alias).LinkTarget is not null, $"{alias} left");
            await EntriesReady(d, 2);
            for (var waited = 0; await Sample("garden_warm_pool{kind=\"ready\"}") != 1; waited += 100)
            {
                Assert.True(waited < 10_000, "the pool gauge did not show the refill");
                await Task.Delay(100);
            }
        }
        finally
        {
            foreach (var h in new[] { pooled, second, privileged }) await d.CliAsync("destroy", h);
        }
        await d.StopAsync();
        Assert.Empty(await LeftoversOfEntries(d, EntriesNamed(d)));
    }

    /// <summary>A daemon whose journal is in memory (no later start could know the pool) leaves nothing of it either.</summary>
    [InstallFact]
    public async Task SIGTERM_releases_the_pool_of_a_daemon_whose_journal_is_in_memory()
    {
        await using var d = new Gardend("""
            garden { warm-pool { size = 2 } }
            akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
            """);
        await d.StartAsync();
        await EntriesReady(d, 2);
        var entries = EntriesNamed(d);
        Assert.Equal(2, entries.Count);
        await d.StopAsync();
        foreach (var entry in entries) Assert.False(await Runs(entry), $"{entry} still runs:\n{d.Log}");
        Assert.Empty(await LeftoversOfEntries(d, entries));
        Assert.Empty(Host.OrphanedHolders());
    }

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.ToString());
}
