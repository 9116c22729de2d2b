using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>The kernel's per-user quotas that user namespaces count up to their owner (inotify instances, 128 per user by
/// default; message queue bytes, 800 KiB): a root process of one ordinary container takes all it can and holds them.
/// Were the namespaces of all containers owned by one host user (root, as runc makes them), that would leave every
/// other container, and host root's own services, none. The control shows the attack working against two namespaces
/// of one owner; then two containers of a real gardend and host root must each still get their own.</summary>
public sealed class SharedQuotaEscapeTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static string Tool => AttackTool.Path("ucounts");

    [InstallFact]
    public async Task Control_two_namespaces_of_one_owner_share_its_quotas_and_one_can_take_them_all()
    {
        var dir = TestPaths.NewTempDir("ucounts");
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
        const string owner = "4292000000"; // one host uid, below the block gardend's owners come from
        var held = Path.Combine(dir, "held");
        string[] asOwner = ["--reuid", owner, "--regid", owner, "--clear-groups", "unshare", "-U", "-i", "--map-root-user", Tool];
        using var hold = System.Diagnostics.Process.Start("setpriv", [.. asOwner, "hold", held])!;
        try
        {
            await WaitForAsync(held);
            Assert.StartsWith("held 128 inotify", File.ReadAllText(held));
            var probe = await Net.Run("setpriv", [.. asOwner, "probe"]);
            Assert.True(probe.ExitCode == 1 && probe.Stdout.Contains("got 0 inotify, 0 mqueue"), $"the attack must work against one owner: {probe}");
        }
        finally
        {
            hold.Kill();
            await hold.WaitForExitAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    [InstallFact]
    public async Task A_container_holding_every_inotify_instance_and_queue_byte_it_can_leaves_other_containers_and_the_host_theirs()
    {
        await Hold(D, "ucounts", async (other, held) =>
        {
            // it took what one user of the host may have: the whole default quota
            Assert.Matches(@"\Aheld 128 inotify, \d+ mqueue\n\z", held);

            var probe = await D.CliAsync("run", other, "--", "/attack/ucounts", "probe");
            Assert.True(probe.ExitCode == 0, $"another container must still get its own: {probe}");
            Assert.Equal("got 16 inotify, 4 mqueue\n", probe.Stdout);
            var host = await Net.Run(Tool, "probe");
            Assert.True(host.ExitCode == 0, $"host root must still get its own: {host}");
            // and a new container too
            var late = Unique("late");
            try
            {
                Ok(await D.CliAsync("create", "--handle", late, "--bind-mount", $"{Path.GetDirectoryName(Tool)}:/attack"));
                Ok(await D.CliAsync("run", late, "--", "/attack/ucounts", "probe"));
            }
            finally { await D.CliAsync("destroy", late); }
        });
        Assert.Equal(0, (await Net.Run(Tool, "probe")).ExitCode);
    }

    /// <summary>Pipe buffers are counted per host uid (not up a namespace's owner), and with Garden's mapping every
    /// container's root is host uid 4294967294: a limit on it is shared by all. The attack's control is the attack tool
    /// against a soft limit of 93184 pages, as an earlier gardend left it: "held 93186 pages", then a pipe of the same uid
    /// is 8192 bytes; and this test against a gardend that left that limit in place fails at the other container's probe
    /// (both by hand: a test cannot set a host-wide limit beside other tests' containers).</summary>
    [InstallFact]
    public async Task A_container_growing_its_pipes_without_end_leaves_other_containers_pipes_their_size()
    {
        var held = await Hold(D, "pipes", async (other, _) =>
        {
            var probe = await D.CliAsync("run", other, "--", "/attack/pipes", "probe");
            Assert.True(probe.ExitCode == 0 && probe.Stdout == "pipe 65536\n", $"another container's pipes must keep their size: {probe}");
            var stream = await D.CliAsync("run", other, "--", "sh", "-c", "head -c 1000000 /dev/zero | wc -c");
            Assert.Equal("1000000", stream.Stdout.Trim());
        });
        // what the attacker held: more than the kernel's default limit of one user (16384 pages) and any share of a
        // limit gardend could have given it
        var pages = long.Parse(System.Text.RegularExpressions.Regex.Match(held, @"\Aheld (\d+) pages\n\z").Groups[1].Value);
        Assert.True(pages > 100_000, held);
    }

    /// <summary>epoll watches count per host uid against fs.epoll.max_user_watches (5.5 million on a 24 GiB host), shared
    /// by every container under Garden's mapping: one container watching a pipe from many epoll instances filled it in
    /// ~7 s by hand (then a probe of the same uid: "epoll: No space left on device"), and no agent of any container could
    /// have added a watch. gardend lifts it; the container's memory limit bounds what its watches cost. The attacker
    /// here takes 6 million (~1 GiB of kernel memory, charged to it, gone with it), past any host's default that size.</summary>
    [InstallFact]
    public async Task A_container_taking_millions_of_epoll_watches_leaves_other_containers_and_their_agents_theirs()
    {
        await Hold(D, "epoll", async (other, held) =>
        {
            Assert.Matches(@"\Aheld \d+ watches", held);

            var probe = await D.CliAsync("run", other, "--", "/attack/epoll", "probe");
            Assert.True(probe.ExitCode == 0 && probe.Stdout == "watched\n", $"another container must still add watches ({held.Trim()}): {probe}");
            // its agent too: a stream of a new process, and a second connection at once
            var both = await Task.WhenAll(D.CliAsync("run", other, "--", "echo", "one"), D.CliAsync("run", other, "--", "echo", "two"));
            Assert.Equal(["one\n", "two\n"], both.Select(r => r.Stdout));
            Assert.Equal("held 6000000 watches: Success\n", held); // what it took was past the shared default
        }, create: ["--memory", "2G"], holdArgs: ["6000000"], wait: TimeSpan.FromSeconds(90));
    }

    /// <summary>Every container's devpts is an instance of its own, but the kernel counts the ptys of every instance but
    /// the host's first against one limit (kernel.pty.max less kernel.pty.reserve, 3072 by default): one container could
    /// take them all. Each container's devpts holds at most garden's share (max=), and gardend raises kernel.pty.max so
    /// that every container's share fits.</summary>
    [InstallFact]
    public async Task A_container_opening_every_pty_it_can_leaves_other_containers_their_ttys()
    {
        await Hold(D, "ptys", async (other, held) =>
        {
            Assert.Matches(@"\Aheld \d+ ptys", held);

            var tty = await D.CliAsync("run", other, "--tty", "--", "tty");
            Assert.True(tty.ExitCode == 0 && tty.Stdout.StartsWith("/dev/pts/", StringComparison.Ordinal), $"another container must still get a tty ({held.Trim()}): {tty}");
            Ok(await D.CliAsync("run", other, "--", "/attack/ptys", "probe"));
            // the attacker's own share, and no more
            Assert.Equal($"held {Garden.Linux.Host.PtyQuota.PerContainer} ptys: No space left on device\n", held);
        });
    }

    /// <summary>SysV shared memory lives in the container's ipc namespace; a segment nobody has attached outlived every
    /// process of the container, so with no memory limit (the default) a container could pin host memory with nothing of
    /// its own left for the OOM killer to kill (2 GiB by hand, kept across Stop). Orphaned segments are now removed.</summary>
    [InstallFact]
    public async Task Shared_memory_a_container_leaves_behind_when_its_process_exits_is_gone()
    {
        await WithToolsAsync("shm", "shmpin", async h =>
        {
            var pin = await D.CliAsync("run", h, "--", "/attack/shmpin", "64");
            Assert.True(pin.ExitCode == 0 && pin.Stdout.Contains("pinned 64 MiB"), pin.ToString());
            var left = await D.CliAsync("run", h, "--", "cat", "/proc/sysvipc/shm");
            Assert.Single(left.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)); // the header line, no segment
        });
    }

    /// <summary>A container holds CAP_NET_RAW (Garden's set). ARP requests from made-up sender addresses made the host add a
    /// neighbour entry for each, until its table was full (gc_thresh3, 1024): the host then lost its entries for other
    /// containers (their NetIn stopped) and for its own gateway. The host side of each container's link now filters by
    /// reverse path: no entry for an address not routed to that link.</summary>
    [InstallFact]
    public async Task ARP_from_made_up_addresses_adds_nothing_to_the_hosts_neighbour_table()
    {
        await WithToolsAsync("arp", "arpflood", async h =>
        {
            var gateway = await GatewayOf(h);
            // 198.18.0.0/16 (a benchmarking range): nothing on this host has an address there
            var flood = await D.CliAsync("run", h, "--", "/attack/arpflood", "eth0", gateway, "2", "198.18.0.0");
            Assert.True(flood.ExitCode == 0 && flood.Stdout.StartsWith("sent ", StringComparison.Ordinal), flood.ToString());
            var entries = (await Net.Run("ip", "-4", "neigh", "show", "to", "198.18.0.0/16")).Stdout;
            Assert.True(entries.Trim().Length == 0, $"the host took neighbour entries from the flood ({flood.Stdout.Trim()}):\n{entries}");
        });
    }

    [InstallFact]
    public async Task The_OOM_killer_takes_a_containers_processes_then_its_agent_before_gardend_and_the_hosts_file_and_pid_tables_fit_every_container()
    {
        // gardend lowers its own where it may (CAP_SYS_RESOURCE, which this test host withholds: then it says so)
        var daemon = int.Parse(File.ReadAllText($"/proc/{D.Pid}/oom_score_adj").Trim());
        Assert.True(daemon == -900 || (daemon == 0 && D.Log.Contains("cannot lower its oom_score_adj")), $"{daemon}: {D.Log}");
        Assert.Equal(long.MaxValue.ToString(), File.ReadAllText("/proc/sys/fs/file-max").Trim());
        Assert.True(long.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim()) >= 4194304);
        // a container's processes are still the OOM killer's first choice
        var h = Unique("oom");
        try
        {
            Ok(await D.CliAsync("create", "--handle", h));
            Assert.Equal("500\n", (await D.CliAsync("run", h, "--", "cat", "/proc/self/oom_score_adj")).Stdout);
            // then its agent (pid 1), and gardend last
            Assert.Equal("300\n", (await D.CliAsync("run", h, "--", "cat", "/proc/1/oom_score_adj")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>cgroup v1 charges TCP socket buffers only to memory.kmem.tcp, and only once that has a limit: a container
    /// limited to 64 MiB queued 2.2 GiB of host memory in 300 unread loopback connections (by hand; the same run against the
    /// build before). Its memory limit now bounds them too.</summary>
    [InstallFact]
    public async Task A_containers_memory_limit_bounds_what_its_unread_TCP_connections_hold()
    {
        await WithToolsAsync("tcphog", "tcphog", async h =>
        {
            var hog = await D.CliAsync("run", h, "--", "/attack/tcphog", "300", "0");
            var queued = System.Text.RegularExpressions.Regex.Match(hog.Stdout, @"(\d+) connections, (\d+) MiB queued; holding");
            Assert.True(queued.Success, hog.ToString());
            Assert.True(long.Parse(queued.Groups[2].Value) < 128, $"TCP buffers past the 64 MiB limit: {hog.Stdout}");
            // the container itself still works, and its TCP too
            var tcp = await D.CliAsync("run", h, "--", "sh", "-c", "(nc -l -p 7071 -e echo served &); sleep 0.3; nc 127.0.0.1 7071 </dev/null");
            Assert.Equal("served\n", tcp.Stdout);
        }, "--memory", "64M");
    }

    /// <summary>Every flow a NetOut rule lets through takes an entry of the host's one connection tracking table: a
    /// container sending to new ports filled it at ~8,700 flows a second (by hand), and then every new flow through the
    /// host, any container's or the host's own, was dropped. A container now holds at most its share
    /// (FirewallRules.FlowsPerContainer); the table is raised to fit every container's.</summary>
    [InstallFact]
    public async Task A_container_opening_flows_without_end_takes_no_more_than_its_share_of_the_hosts_connection_table()
    {
        await WithToolsAsync("flows", "udpflows", async h =>
        {
            var gateway = await GatewayOf(h);
            Ok(await D.CliAsync("net-out", h, "--network", gateway, "--protocol", "udp"));
            var max = long.Parse(File.ReadAllText("/proc/sys/net/netfilter/nf_conntrack_max").Trim());
            Assert.True(max >= Garden.Linux.Host.HostFloors.ConntrackFor(1), $"nf_conntrack_max {max}");
            var before = long.Parse(File.ReadAllText("/proc/sys/net/netfilter/nf_conntrack_count").Trim());
            var flood = await D.CliAsync("run", h, "--", "/attack/udpflows", gateway, "10000");
            Assert.True(flood.ExitCode == 0 && flood.Stdout.StartsWith("sent ", StringComparison.Ordinal), flood.ToString());
            var after = long.Parse(File.ReadAllText("/proc/sys/net/netfilter/nf_conntrack_count").Trim());
            // (other tests' flows may come and go meanwhile: a margin, far below the 10,000 it sent)
            Assert.True(after - before < Garden.Linux.Network.FirewallRules.FlowsPerContainer + 1500,
                $"{after - before} new tracked flows from one container ({flood.Stdout.Trim()})");
        });
    }

    /// <summary>Descriptors in flight (SCM_RIGHTS) are counted per host uid, and a send is refused once that count is above
    /// the sender's RLIMIT_NOFILE: no sysctl lifts it. With Garden's mapping every container's root is host uid 4294967294,
    /// so a container holding descriptors in flight makes other containers' root processes' sends fail (a known limit of
    /// that mapping, in the README); what gardend guarantees there is that processes still start (the agent hands a new
    /// process its pipes over SCM_RIGHTS to its spawner, and takes its direct path when refused). With per-container
    /// ranges no two containers share a uid: the other container's own sends work too.</summary>
    [InstallFact]
    public async Task A_container_keeping_descriptors_in_flight_leaves_other_containers_able_to_run()
    {
        var held = await HoldInFlight(D, async (other, _) =>
        {
            var spawner = await SpawnerPid(D, other);
            for (var i = 0; i < 3; i++)
            {
                var echo = await D.CliAsync("run", other, "--", "echo", "still runs");
                Assert.True(echo.ExitCode == 0 && echo.Stdout == "still runs\n", $"another container must still run processes: {echo}");
            }
            var sh = await D.CliAsync("run", other, "--", "sh", "-c", "echo piped | tr a-z A-Z");
            Assert.Equal("PIPED\n", sh.Stdout);
            // refused, the spawner was left alone (not taken for gone and replaced on every process)
            Assert.Equal(spawner, await SpawnerPid(D, other));
        });
        Assert.Matches(@"\Aheld \d+ in flight \(\d+\): Too many references", held);
    }

    [InstallFact]
    public async Task With_per_container_ranges_a_container_keeping_descriptors_in_flight_leaves_others_theirs()
    {
        await using var d = new Gardend("garden.user-namespace.mapping = per-container");
        await d.StartAsync();
        await HoldInFlight(d, async (other, _) =>
        {
            var probe = await d.CliAsync("run", other, "--", "/attack/inflight", "probe");
            Assert.True(probe.ExitCode == 0 && probe.Stdout == "sent\n", $"another container must still pass descriptors: {probe}");
            Ok(await d.CliAsync("run", other, "--", "echo", "still runs"));
        });
    }

    /// <summary>The container's default gateway (the host's end of its link), as `ip route` inside shows it.</summary>
    private async Task<string> GatewayOf(string handle)
    {
        var route = (await D.CliAsync("run", handle, "--", "ip", "route")).Stdout;
        var gateway = System.Text.RegularExpressions.Regex.Match(route, @"default via (\S+)").Groups[1].Value;
        Assert.True(gateway.Length > 0, route);
        return gateway;
    }

    private static async Task<string> SpawnerPid(Gardend d, string handle)
    {
        var r = await d.CliAsync("run", handle, "--", "sh", "-c",
            "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = garden-spawner ] && echo ${p#/proc/}; done; true");
        Assert.True(r.ExitCode == 0 && r.Stdout.Trim().Length > 0, $"no spawner: {r}");
        return r.Stdout.Trim();
    }

    /// <summary>The in-flight hold (<see cref="Hold"/>), with as many descriptors as the most a process may have: its agent's
    /// own hard limit (the container's pid 1), above the default.</summary>
    private static async Task<string> HoldInFlight(Gardend d, Func<string, string, Task> check)
    {
        var held = await Hold(d, "inflight", async (other, h) =>
        {
            Assert.Matches(@"\Aheld \d+ in flight", h);
            await check(other, h);
        }, runOptions: async attacker =>
        {
            var limits = (await d.CliAsync("run", attacker, "--", "cat", "/proc/1/limits")).Stdout;
            var most = System.Text.RegularExpressions.Regex.Match(limits, @"Max open files\s+\d+\s+(\d+)").Groups[1].Value;
            Assert.True(most.Length > 0, limits);
            return ["--rlimit", $"nofile={most}"];
        }, wait: TimeSpan.FromSeconds(30));
        return held;
    }

    /// <summary>A container with the attack tools at /attack (after <paramref name="create"/>'s options), given to
    /// <paramref name="attack"/>; destroyed afterwards, whatever happened.</summary>
    private async Task WithToolsAsync(string prefix, string tool, Func<string, Task> attack, params string[] create)
    {
        var h = Unique(prefix);
        var tools = Path.GetDirectoryName(AttackTool.Path(tool))!;
        try
        {
            Ok(await D.CliAsync(["create", "--handle", h, .. create, "--bind-mount", $"{tools}:/attack"]));
            await attack(h);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>The attack every test here shares: two containers with the attack tools at /attack; in the first,
    /// `/attack/TOOL hold /tmp/held HOLDARGS` runs detached until it wrote what it holds (within <paramref name="wait"/>);
    /// then <paramref name="check"/> runs with the other container and that text. Both are destroyed, and nothing of
    /// the attacker is left on the host. Returns what it held.</summary>
    private static async Task<string> Hold(Gardend d, string tool, Func<string, string, Task> check, string[]? create = null,
        string[]? holdArgs = null, Func<string, Task<string[]>>? runOptions = null, TimeSpan? wait = null)
    {
        var (attacker, other) = (Unique(tool + "hog"), Unique(tool + "victim"));
        var attack = Path.GetDirectoryName(AttackTool.Path(tool))!;
        var within = wait ?? TimeSpan.FromSeconds(15);
        string held = "";
        try
        {
            Ok(await d.CliAsync(["create", "--handle", attacker, .. create ?? [], "--bind-mount", $"{attack}:/attack"]));
            Ok(await d.CliAsync("create", "--handle", other, "--bind-mount", $"{attack}:/attack"));
            string[] options = runOptions is null ? [] : await runOptions(attacker);
            Ok(await d.CliAsync(["run", attacker, "--detach", .. options, "--", $"/attack/{tool}", "hold", "/tmp/held", .. holdArgs ?? []]));
            var poll = TimeSpan.FromMilliseconds(Math.Clamp(within.TotalMilliseconds / 300, 50, 250));
            for (var deadline = DateTime.UtcNow + within; DateTime.UtcNow < deadline && held.Length == 0; await Task.Delay(poll))
                held = (await d.CliAsync("run", attacker, "--", "cat", "/tmp/held")).Stdout;
            await check(other, held);
        }
        finally
        {
            await d.CliAsync("destroy", attacker);
            await d.CliAsync("destroy", other);
        }
        Assert.Empty(Host.Leftovers(d, attacker));
        return held;
    }

    private static async Task WaitForAsync(string file)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < deadline; await Task.Delay(20))
            if (File.Exists(file) && File.ReadAllText(file).EndsWith('\n')) return;
        throw new TimeoutException($"{file} was not written");
    }

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.ToString());
}
