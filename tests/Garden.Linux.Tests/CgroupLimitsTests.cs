using System.Diagnostics;
using Garden.Linux.Cgroups;
using Garden.Linux.Interop;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>cgroup v2 limits, metrics and OOM notification against a fake cgroupfs in a temp dir.</summary>
public sealed class CgroupLimitsV2FakeTests : IDisposable
{
    private const ulong MiB = 1 << 20;
    private readonly string _root = TestPaths.NewTempDir("cgroupfs");
    private readonly string _dir;

    public CgroupLimitsV2FakeTests()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n");
        _dir = Path.Combine(_root, "garden-test-v2", "c1");
        Directory.CreateDirectory(_dir);
        Write("memory.max", "max\n");
        Write("memory.swap.max", "max\n");
        Write("cpu.weight", "100\n");
        Write("cpu.max", "max 100000\n");
        Write("pids.max", "max\n");
        Write("memory.current", "12582912\n");
        Write("memory.stat", "anon 8388608\nfile 4194304\nkernel 65536\npgfault 1234\n");
        Write("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n");
        Write("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n");
        Write("pids.current", "3\n");
    }

    public void Dispose() => Directory.Delete(_root, true);

    private void Write(string file, string text) => File.WriteAllText(Path.Combine(_dir, file), text);

    private string Contents(string file) => File.ReadAllText(Path.Combine(_dir, file)).Trim();

    private ICgroupManager Manager() => CgroupManager.Create("garden-test-v2", _root);

    [Fact]
    public void Apply_writes_only_the_given_limits_in_v2_form()
    {
        var m = Manager();
        m.Apply("c1", new ResourceLimits(MemoryBytes: 64 * MiB, CpuWeight: 1024, CpuQuota: 0.5, Pids: 42));
        Assert.Equal("67108864", Contents("memory.max"));
        Assert.Equal("0", Contents("memory.swap.max"));
        Assert.Equal("39", Contents("cpu.weight")); // 1 + (1022 * 9999) / 262142, as runc converts
        Assert.Equal("50000 100000", Contents("cpu.max"));
        Assert.Equal("42", Contents("pids.max"));

        m.Apply("c1", new ResourceLimits(Pids: 7));
        Assert.Equal("7", Contents("pids.max"));
        Assert.Equal("67108864", Contents("memory.max"));
        Assert.Equal("39", Contents("cpu.weight"));
        Assert.Equal("50000 100000", Contents("cpu.max"));

        m.Apply("c1", new ResourceLimits(CpuQuota: 0.001, CpuWeight: 2));
        Assert.Equal("1000 100000", Contents("cpu.max")); // at least 1000 µs
        Assert.Equal("1", Contents("cpu.weight"));
        m.Apply("c1", new ResourceLimits(CpuWeight: 262144));
        Assert.Equal("10000", Contents("cpu.weight"));
    }

    [Fact]
    public void Read_parses_what_the_files_hold_and_null_means_unlimited()
    {
        var m = Manager();
        var fresh = m.Read("c1");
        Assert.Null(fresh.MemoryBytes);
        Assert.Null(fresh.CpuQuota);
        Assert.Null(fresh.Pids);
        Assert.Equal(100UL, LimitRules.SharesToWeight(fresh.CpuWeight!.Value)); // the default weight, in shares units

        m.Apply("c1", new ResourceLimits(MemoryBytes: 64 * MiB, CpuWeight: 1024, CpuQuota: 0.2, Pids: 42));
        var read = m.Read("c1");
        Assert.Equal(64 * MiB, read.MemoryBytes);
        Assert.Equal(0.2, read.CpuQuota);
        Assert.Equal(42UL, read.Pids);
        Assert.Equal(39UL, LimitRules.SharesToWeight(read.CpuWeight!.Value));
        Assert.Equal(999UL, read.CpuWeight); // the smallest shares value with weight 39: the mapping is many-to-one
    }

    [Fact]
    public void Shares_weight_conversion_round_trips_through_the_weight()
    {
        for (ulong w = 1; w <= 10000; w++)
            Assert.Equal(w, LimitRules.SharesToWeight(LimitRules.WeightToShares(w)));
        Assert.Equal(1UL, LimitRules.SharesToWeight(2));
        Assert.Equal(10000UL, LimitRules.SharesToWeight(262144));
    }

    [Fact]
    public void Metrics_parse_the_v2_files()
    {
        File.WriteAllText(Path.Combine(_dir, "memory.max"), "33554432\n");
        File.WriteAllText(Path.Combine(_dir, "pids.max"), "100\n");
        var x = Manager().Metrics("c1");
        Assert.Equal(12582912UL, x.MemoryUsageBytes);
        Assert.Equal(33554432UL, x.MemoryLimitBytes);
        Assert.Equal(8388608UL, x.MemoryStat["anon"]);
        Assert.Equal(1234UL, x.MemoryStat["pgfault"]);
        Assert.Equal(4, x.MemoryStat.Count);
        Assert.Equal(1UL, x.OomKills);
        Assert.Equal(1_500_000UL, x.CpuUsageNs);
        Assert.Equal(1_000_000UL, x.CpuUserNs);
        Assert.Equal(500_000UL, x.CpuSystemNs);
        Assert.Equal(3UL, x.PidsCurrent);
        Assert.Equal(100UL, x.PidsMax);
    }

    [Theory]
    [InlineData(null, 0UL, null, null, "CpuWeight")]
    [InlineData(null, 1UL, null, null, "CpuWeight")]
    [InlineData(null, 262145UL, null, null, "CpuWeight")]
    [InlineData(null, null, 0.0, null, "CpuQuota")]
    [InlineData(null, null, -1.0, null, "CpuQuota")]
    [InlineData(null, null, double.NaN, null, "CpuQuota")]
    [InlineData(null, null, double.PositiveInfinity, null, "CpuQuota")]
    [InlineData(64UL << 20, 1UL, 0.5, 5UL, "CpuWeight")] // one bad field: nothing is written
    public void Values_no_cgroup_file_takes_are_a_callers_bug_and_nothing_is_written(
        ulong? memory, ulong? weight, double? quota, ulong? pids, string field)
    {
        // (what a limit may be — memory 4 MiB to 64 TiB, pids from 1, ... — is the domain's: Garden.Actors' Limits)
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Manager().Apply("c1", new ResourceLimits(memory, weight, quota, pids)));
        Assert.Contains(field, e.Message);
        Assert.Equal("max", Contents("memory.max"));
        Assert.Equal("100", Contents("cpu.weight"));
        Assert.Equal("max 100000", Contents("cpu.max"));
        Assert.Equal("max", Contents("pids.max"));
    }

    [Fact]
    public void A_refused_write_names_value_and_file_and_puts_back_what_this_call_changed()
    {
        var m = Manager();
        m.Apply("c1", new ResourceLimits(CpuWeight: 1024, Pids: 50));
        // memory.max cannot be written (a directory stands where the file should be): the last piece fails.
        File.Delete(Path.Combine(_dir, "memory.max"));
        Directory.CreateDirectory(Path.Combine(_dir, "memory.max"));

        var e = Assert.Throws<CgroupLimitException>(() =>
            m.Apply("c1", new ResourceLimits(MemoryBytes: 64 * MiB, CpuWeight: 2, CpuQuota: 1.5, Pids: 9)));
        Assert.Contains("67108864", e.Message);
        Assert.Contains(Path.Combine(_dir, "memory.max"), e.Message);
        Assert.Equal("39", Contents("cpu.weight"));
        Assert.Equal("max 100000", Contents("cpu.max"));
        Assert.Equal("50", Contents("pids.max"));
        Assert.Equal("max", Contents("memory.swap.max"));
    }

    [Fact]
    public void A_limit_of_a_controller_the_tree_does_not_offer_is_refused()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu pids\n");
        var m = Manager();
        var e = Assert.Throws<CgroupLimitException>(() => m.Apply("c1", new ResourceLimits(MemoryBytes: 64 * MiB, Pids: 5)));
        Assert.Contains("Memory", e.Message);
        Assert.Equal("max", Contents("pids.max"));
        m.Apply("c1", new ResourceLimits(Pids: 5));
        Assert.Equal("5", Contents("pids.max"));
    }

    [Fact]
    public void Pids_current_is_the_processes_under_the_limit_plus_the_agent_as_one_process_not_its_threads()
    {
        // v2: the agent in init (its pids.current counts its threads), the container's processes in work.
        Directory.CreateDirectory(Path.Combine(_dir, "init"));
        Directory.CreateDirectory(Path.Combine(_dir, "work"));
        Write("pids.current", "14\n");
        File.WriteAllText(Path.Combine(_dir, "init", "pids.current"), "12\n");
        File.WriteAllText(Path.Combine(_dir, "init", "cgroup.procs"), "4242\n");
        // two processes and the agent's spawner, which counts with the agent as its one process
        File.WriteAllText(Path.Combine(_dir, "work", "pids.current"), "3\n");
        File.WriteAllText(Path.Combine(_dir, "work", "pids.max"), "51\n");
        var x = Manager().Metrics("c1");
        Assert.Equal(3UL, x.PidsCurrent);
        Assert.Equal(50UL, x.PidsMax);
        // no spawner in work (none started yet, or container root killed it): nothing goes below the agent
        File.WriteAllText(Path.Combine(_dir, "work", "pids.current"), "0\n");
        Assert.Equal(1UL, Manager().Metrics("c1").PidsCurrent);
    }

    [Fact]
    public void The_process_cgroup_holds_the_pids_limit_asked_plus_the_spawner_s_slot_and_reads_back_the_limit_asked()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "work"));
        File.WriteAllText(Path.Combine(_dir, "work", "pids.max"), "max\n");
        var m = Manager();
        m.Apply("c1", new ResourceLimits(Pids: 20));
        Assert.Equal("21", File.ReadAllText(Path.Combine(_dir, "work", "pids.max")).Trim());
        Assert.Equal(20UL, m.Read("c1").Pids);
        // the kernel's largest limit leaves no room for one more: unlimited then (no more tasks can exist anyway)
        m.Apply("c1", new ResourceLimits(Pids: 4_194_304));
        Assert.Equal("max", File.ReadAllText(Path.Combine(_dir, "work", "pids.max")).Trim());
    }

    [Fact]
    public void Swap_max_is_skipped_when_swap_accounting_is_off()
    {
        File.Delete(Path.Combine(_dir, "memory.swap.max"));
        Manager().Apply("c1", new ResourceLimits(MemoryBytes: 32 * MiB));
        Assert.Equal("33554432", Contents("memory.max"));
        Assert.False(File.Exists(Path.Combine(_dir, "memory.swap.max")));
    }

    [Fact]
    public void Notifier_calls_back_once_per_oom_kill_increase_and_not_after_dispose()
    {
        var calls = 0;
        using (var watch = OomNotifier.Create("garden-test-v2", _root).Watch("c1", () => Interlocked.Increment(ref calls)))
        {
            Thread.Sleep(100);
            Write("memory.events", "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n");
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls) == 1, 5000), $"calls {calls}");
            Write("memory.events", "low 0\nhigh 3\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"); // no new kill
            Thread.Sleep(300);
            Assert.Equal(1, Volatile.Read(ref calls));
            Write("memory.events", "low 0\nhigh 3\nmax 20\noom 4\noom_kill 4\noom_group_kill 0\n"); // two kills
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls) == 3, 5000), $"calls {calls}");
        }
        Write("memory.events", "oom_kill 9\n");
        Thread.Sleep(300);
        Assert.Equal(3, Volatile.Read(ref calls));
    }

    [Fact]
    public void A_watch_may_be_disposed_from_its_own_callback()
    {
        var calls = 0;
        IDisposable? watch = null;
        watch = OomNotifier.Create("garden-test-v2", _root).Watch("c1", () =>
        {
            Interlocked.Increment(ref calls);
            watch!.Dispose();
        });
        Thread.Sleep(100);
        Write("memory.events", "oom_kill 5\n"); // four kills: the first callback ends the watch
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls) >= 1, 5000));
        Thread.Sleep(300);
        Assert.Equal(1, Volatile.Read(ref calls));
        watch.Dispose();
    }

    /// <summary>One notifier, many containers (gardend has one for all): each kill reaches the watch of its own
    /// container and no other, all on one thread, which ends with the last watch.</summary>
    [Fact]
    public void Many_watches_are_served_by_one_thread_and_each_kill_is_reported_to_its_own_container()
    {
        const int n = 60;
        var notifier = OomNotifier.Create("garden-test-v2", _root);
        var calls = new int[n];
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<Thread, bool>();
        var watches = new List<IDisposable>();
        for (var i = 0; i < n; i++)
        {
            var dir = Path.Combine(_root, "garden-test-v2", $"m{i}");
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "memory.events"), "oom 0\noom_kill 0\n");
            var k = i;
            watches.Add(notifier.Watch($"m{i}", () =>
            {
                threads[Thread.CurrentThread] = true;
                Interlocked.Increment(ref calls[k]);
            }));
        }
        var kills = new Dictionary<int, int> { [3] = 1, [17] = 2, [42] = 3, [59] = 1 };
        foreach (var (i, k) in kills)
            File.WriteAllText(Path.Combine(_root, "garden-test-v2", $"m{i}", "memory.events"), $"oom {k}\noom_kill {k}\n");
        Assert.True(SpinWait.SpinUntil(() => kills.All(kv => Volatile.Read(ref calls[kv.Key]) == kv.Value), 5000),
            string.Join(" ", calls));
        Thread.Sleep(300);
        for (var i = 0; i < n; i++) Assert.Equal(kills.GetValueOrDefault(i), Volatile.Read(ref calls[i]));
        var thread = Assert.Single(threads.Keys);
        Assert.Equal("oom-watch", thread.Name);

        foreach (var w in watches) w.Dispose();
        Assert.True(thread.Join(2000), "the watch thread did not end with the last watch");
        File.WriteAllText(Path.Combine(_root, "garden-test-v2", "m3", "memory.events"), "oom 5\noom_kill 5\n");
        using var again = notifier.Watch("m3", () => Interlocked.Increment(ref calls[3])); // a new thread, baseline 5
        File.WriteAllText(Path.Combine(_root, "garden-test-v2", "m3", "memory.events"), "oom 6\noom_kill 6\n");
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls[3]) == 2, 5000), $"calls {calls[3]}");
    }

    [Fact]
    public void Notifier_does_not_call_back_when_the_cgroup_goes_away()
    {
        var calls = 0;
        var watch = OomNotifier.Create("garden-test-v2", _root).Watch("c1", () => Interlocked.Increment(ref calls));
        Directory.Delete(_dir, true);
        Thread.Sleep(300);
        var sw = Stopwatch.StartNew();
        watch.Dispose();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"dispose took {sw.Elapsed}");
        Assert.Equal(0, calls);
    }
}

/// <summary>cgroup v1 for real (root, hybrid host): limits, refusals, OOM kill notification, pids and cpu accounting,
/// with real processes in throwaway cgroups under garden-test-cg-&lt;pid&gt;-limits.</summary>
[Requires(Needs.CgroupV1)]
public sealed class CgroupLimitsV1RealTests : IDisposable
{
    private const ulong MiB = 1 << 20;
    private static readonly string[] Controllers = ["memory", "cpu", "cpuacct", "pids"];
    private const string Root = "/sys/fs/cgroup";

    // Not garden-test-cg-<pid> itself: CgroupManagerTests releases that parent concurrently.
    private readonly string _parent = $"garden-test-cg-{Environment.ProcessId}-limits";
    private readonly ICgroupManager _m;
    private readonly List<string> _leaves = [];
    private readonly List<System.Diagnostics.Process> _processes = [];

    public CgroupLimitsV1RealTests()
    {
        Assert.False(CgroupManager.IsUnified(Root), "these tests are for a cgroup v1 (hybrid) host");
        _m = CgroupManager.Create(_parent, Root);
    }

    private string Leaf(string name)
    {
        foreach (var c in Controllers) Directory.CreateDirectory(Path.Combine(Root, c, _parent, name));
        _leaves.Add(name);
        return name;
    }

    private string FileOf(string controller, string leaf, string file) => Path.Combine(Root, controller, _parent, leaf, file);

    private string Contents(string controller, string leaf, string file) => File.ReadAllText(FileOf(controller, leaf, file)).Trim();

    /// <summary>Starts `sh -c script` held at a `read` until it sits in the leaf in every controller, then lets it go.</summary>
    private System.Diagnostics.Process StartIn(string leaf, string script, string below = "")
    {
        var p = new System.Diagnostics.Process
        {
            StartInfo = new ProcessStartInfo("/bin/sh", ["-c", "read go; " + script])
            {
                RedirectStandardInput = true,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            },
        };
        p.Start();
        _processes.Add(p);
        foreach (var c in Controllers)
        {
            var sub = c is "memory" or "pids" ? below : "";
            File.WriteAllText(FileOf(c, leaf, Path.Combine(sub, "cgroup.procs")), p.Id.ToString());
        }
        p.StandardInput.WriteLine("go");
        p.StandardInput.Flush();
        return p;
    }

    public void Dispose()
    {
        foreach (var leaf in _leaves)
        {
            var procs = FileOf("pids", leaf, "cgroup.procs");
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (File.Exists(procs) && DateTime.UtcNow < deadline)
            {
                var pids = File.ReadAllLines(procs).Where(l => l.Length > 0).Select(int.Parse).ToList();
                if (pids.Count == 0) break;
                foreach (var pid in pids) Sys.Kill(pid, Tmds.Linux.LibC.SIGKILL);
                Thread.Sleep(20);
            }
        }
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(true); p.WaitForExit(5000); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        foreach (var leaf in _leaves) _m.Release(leaf);
        foreach (var c in Controllers) Assert.False(Directory.Exists(Path.Combine(Root, c, _parent)), $"{c}/{_parent} left behind");
    }

    [RootFact]
    public void Apply_and_Read_round_trip_memory_cpu_and_pids()
    {
        var h = Leaf("roundtrip");
        var fresh = _m.Read(h);
        Assert.Equal(new ResourceLimits(CpuWeight: 1024), fresh); // shares default 1024 is a value; the rest unlimited

        var limits = new ResourceLimits(MemoryBytes: 64 * MiB, CpuWeight: 512, CpuQuota: 0.2, Pids: 100);
        _m.Apply(h, limits);
        Assert.Equal("67108864", Contents("memory", h, "memory.limit_in_bytes"));
        Assert.Equal("67108864", Contents("memory", h, "memory.memsw.limit_in_bytes"));
        Assert.Equal("512", Contents("cpu", h, "cpu.shares"));
        Assert.Equal("100000", Contents("cpu", h, "cpu.cfs_period_us"));
        Assert.Equal("20000", Contents("cpu", h, "cpu.cfs_quota_us"));
        Assert.Equal("100", Contents("pids", h, "pids.max"));
        Assert.Equal(limits, _m.Read(h));

        _m.Apply(h, new ResourceLimits(MemoryBytes: 256 * MiB)); // raising: memsw first
        Assert.Equal(limits with { MemoryBytes = 256 * MiB }, _m.Read(h));
        _m.Apply(h, new ResourceLimits(MemoryBytes: 16 * MiB)); // lowering: limit first
        Assert.Equal(limits with { MemoryBytes = 16 * MiB }, _m.Read(h));
        Assert.Equal("16777216", Contents("memory", h, "memory.memsw.limit_in_bytes"));

        _m.Apply(h, new ResourceLimits(CpuQuota: 1.5, Pids: 3));
        Assert.Equal(new ResourceLimits(16 * MiB, 512, 1.5, 3), _m.Read(h));
    }

    [RootFact]
    public void Lowering_memory_below_what_a_process_holds_is_refused_and_the_old_limits_stay()
    {
        var h = Leaf("refuse");
        var before = new ResourceLimits(MemoryBytes: 256 * MiB, CpuWeight: 512, CpuQuota: 0.5, Pids: 100);
        _m.Apply(h, before);
        StartIn(h, "exec perl -e '$x = \"a\" x (64 << 20); sleep 60'");
        Assert.True(SpinWait.SpinUntil(() => _m.Metrics(h).MemoryUsageBytes >= 64 * MiB, 10_000),
            $"usage {_m.Metrics(h).MemoryUsageBytes}");

        var e = Assert.Throws<CgroupLimitException>(() =>
            _m.Apply(h, new ResourceLimits(MemoryBytes: 8 * MiB, CpuWeight: 100, CpuQuota: 0.1, Pids: 20)));
        Assert.Contains("8388608", e.Message);
        Assert.Contains("memory.", e.Message);
        Assert.Contains(Path.Combine(Root, "memory", _parent, h), e.Message);
        Assert.Equal(before, _m.Read(h));
        Assert.Equal("268435456", Contents("memory", h, "memory.memsw.limit_in_bytes"));
    }

    [RootFact]
    public void A_memory_hog_is_oom_killed_and_the_notifier_calls_back_exactly_once()
    {
        var h = Leaf("oom");
        _m.Apply(h, new ResourceLimits(MemoryBytes: 32 * MiB));
        var calls = 0;
        using var watch = OomNotifier.Create(_parent, Root).Watch(h, () => Interlocked.Increment(ref calls));
        var hog = StartIn(h, "exec perl -e '$x = \"a\" x (200 << 20); sleep 5'");
        Assert.True(hog.WaitForExit(30_000));
        Assert.Equal(137, hog.ExitCode); // SIGKILL from the OOM killer
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls) >= 1, 10_000), "no OOM callback");
        Thread.Sleep(1500);
        Assert.Equal(1, Volatile.Read(ref calls));
        var metrics = _m.Metrics(h);
        Assert.Equal(1UL, metrics.OomKills);
        Assert.Equal(32 * MiB, metrics.MemoryLimitBytes);
    }

    /// <summary>A container made now: its processes in work (memory and pids), the limit asked there, the container's own
    /// cgroup (the agent's) the limit plus the agent's allowance; the kill happens in work, where v1 counts it and the
    /// notifier watches.</summary>
    [RootFact]
    public void With_a_process_cgroup_the_memory_limit_is_on_work_the_container_gets_the_allowance_more_and_kills_there_are_seen()
    {
        var h = Leaf("split");
        Assert.NotNull(_m.PrepareProcessCgroup(h));
        Assert.Equal(Path.Combine(Root, "memory", _parent, h, "work"), _m.MemoryProcessCgroup(h));
        _m.Apply(h, new ResourceLimits(MemoryBytes: 32 * MiB));
        Assert.Equal($"{32 * MiB}", Contents("memory", h, "work/memory.limit_in_bytes"));
        Assert.Equal($"{32 * MiB}", Contents("memory", h, "work/memory.memsw.limit_in_bytes"));
        Assert.Equal($"{64 * MiB}", Contents("memory", h, "memory.limit_in_bytes"));
        Assert.Equal($"{64 * MiB}", Contents("memory", h, "memory.memsw.limit_in_bytes"));
        Assert.Equal(32 * MiB, _m.Read(h).MemoryBytes);

        var calls = 0;
        using var watch = OomNotifier.Create(_parent, Root).Watch(h, () => Interlocked.Increment(ref calls));
        var hog = StartIn(h, "exec perl -e '$x = \"a\" x (200 << 20); sleep 5'", below: "work");
        Assert.True(hog.WaitForExit(30_000));
        Assert.Equal(137, hog.ExitCode);
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls) >= 1, 10_000), "no OOM callback");
        var metrics = _m.Metrics(h);
        Assert.Equal(1UL, metrics.OomKills);
        Assert.Equal(32 * MiB, metrics.MemoryLimitBytes);
        Assert.Equal("0", CgroupFile.ReadKey(FileOf("memory", h, "memory.oom_control"), "oom_kill").ToString());

        _m.Apply(h, new ResourceLimits(MemoryBytes: 128 * MiB));
        Assert.Equal($"{160 * MiB}", Contents("memory", h, "memory.limit_in_bytes"));
        Assert.Equal($"{128 * MiB}", Contents("memory", h, "work/memory.limit_in_bytes"));
    }

    /// <summary>One notifier for several containers, as gardend has: the kills in two of four are each reported once to
    /// their own watch, none to the others, all on one thread.</summary>
    [RootFact]
    public void Kills_in_several_containers_are_each_reported_to_their_own_watch_on_one_thread()
    {
        var notifier = OomNotifier.Create(_parent, Root);
        var leaves = new[] { Leaf("many0"), Leaf("many1"), Leaf("many2"), Leaf("many3") };
        var calls = new int[leaves.Length];
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        var watches = leaves.Select((h, i) =>
        {
            _m.Apply(h, new ResourceLimits(MemoryBytes: 16 * MiB));
            return notifier.Watch(h, () =>
            {
                threads[Environment.CurrentManagedThreadId] = true;
                Interlocked.Increment(ref calls[i]);
            });
        }).ToList();
        try
        {
            var hogs = new[] { 0, 2 }.Select(i => StartIn(leaves[i], "exec perl -e '$x = \"a\" x (100 << 20); sleep 5'")).ToList();
            var idle = StartIn(leaves[1], "sleep 5");
            foreach (var hog in hogs)
            {
                Assert.True(hog.WaitForExit(30_000));
                Assert.Equal(137, hog.ExitCode);
            }
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref calls[0]) >= 1 && Volatile.Read(ref calls[2]) >= 1, 10_000),
                string.Join(" ", calls));
            Thread.Sleep(1500);
            Assert.Equal(new[] { 1, 0, 1, 0 }, calls);
            Assert.Single(threads);
            idle.Kill();
        }
        finally
        {
            foreach (var w in watches) w.Dispose();
        }
    }

    [RootFact]
    public void Removing_a_watched_cgroup_does_not_call_back()
    {
        var h = Leaf("removed");
        var calls = 0;
        var watch = OomNotifier.Create(_parent, Root).Watch(h, () => Interlocked.Increment(ref calls));
        var p = StartIn(h, "exit 0");
        Assert.True(p.WaitForExit(10_000));
        foreach (var c in Controllers) Directory.Delete(Path.Combine(Root, c, _parent, h));
        Thread.Sleep(1500); // the eventfd fires on removal; the oom_kill count decides
        Assert.True(((OomWatch)watch).WakeUps >= 1, "the removal should have woken the eventfd");
        var sw = Stopwatch.StartNew();
        watch.Dispose();
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"dispose took {sw.Elapsed}");
        Assert.Equal(0, calls);
    }

    [RootFact]
    public void Disposing_a_watch_stops_it_without_calling_back()
    {
        var h = Leaf("disposed");
        var calls = 0;
        var watch = OomNotifier.Create(_parent, Root).Watch(h, () => Interlocked.Increment(ref calls));
        watch.Dispose();
        watch.Dispose(); // idempotent
        _m.Apply(h, new ResourceLimits(MemoryBytes: 16 * MiB));
        var hog = StartIn(h, "exec perl -e '$x = \"a\" x (100 << 20); sleep 5'");
        Assert.True(hog.WaitForExit(30_000));
        Assert.Equal(1UL, _m.Metrics(h).OomKills);
        Thread.Sleep(500);
        Assert.Equal(0, calls);
    }

    [RootFact]
    public void Forks_stop_at_pids_max()
    {
        var h = Leaf("pids");
        _m.Apply(h, new ResourceLimits(Pids: 10));
        var p = StartIn(h, "i=0; while [ $i -lt 50 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo all-forked");
        Assert.True(p.WaitForExit(10_000));
        var stdout = p.StandardOutput.ReadToEnd();
        var stderr = p.StandardError.ReadToEnd();
        Assert.NotEqual(0, p.ExitCode);
        Assert.DoesNotContain("all-forked", stdout);
        Assert.Contains("fork", stderr, StringComparison.OrdinalIgnoreCase);
        var metrics = _m.Metrics(h);
        Assert.Equal(10UL, metrics.PidsMax);
        Assert.InRange(metrics.PidsCurrent, 1UL, 10UL);
        Assert.StartsWith("max ", Contents("pids", h, "pids.events"));
        Assert.NotEqual("max 0", Contents("pids", h, "pids.events"));
    }

    [RootFact]
    public void Metrics_show_cpu_and_memory_usage_after_work()
    {
        var h = Leaf("busy");
        var p = StartIn(h, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
        Assert.True(p.WaitForExit(60_000));
        var metrics = _m.Metrics(h);
        Assert.True(metrics.CpuUsageNs > 0, $"usage {metrics.CpuUsageNs}");
        Assert.True(metrics.CpuUserNs > 0, $"user {metrics.CpuUserNs}");
        Assert.True(metrics.CpuUsageNs >= 50_000_000, $"usage {metrics.CpuUsageNs} after a busy loop");
        Assert.Null(metrics.MemoryLimitBytes);
        Assert.Null(metrics.PidsMax);
        Assert.Equal(0UL, metrics.OomKills);
        Assert.Contains("rss", metrics.MemoryStat.Keys);
        Assert.Contains("total_cache", metrics.MemoryStat.Keys);
    }
}
