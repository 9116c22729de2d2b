using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Garden.Protocol.Api;
using Grpc.Core;
using Grpc.Net.Client;

// Side-by-side benchmark: gardend (through its gRPC API) and raw runc on the same rootfs, in the same run.
// Usage: Garden.Bench GARDEND_DLL AGENT ROOTFS RESULTS_JSON [REPETITIONS]
var gardendDll = args[0];
var agent = args[1];
var rootfs = args[2];
var resultsFile = args[3];
var reps = args.Length > 4 ? int.Parse(args[4]) : 30;

// BENCH_POOL=N: gardend keeps N containers made ahead (garden.warm-pool.size); the create and parallel rows say how many of
// their Creates took one. BENCH_POOL_WAIT=1: each measured Create (and each parallel round) first waits, unmeasured, until
// the pool is full again; without it the reps follow each other as they always do and the refill competes with them.
var poolSize = int.TryParse(Environment.GetEnvironmentVariable("BENCH_POOL"), out var ps) ? ps : 0;
var poolWait = poolSize > 0 && Environment.GetEnvironmentVariable("BENCH_POOL_WAIT") == "1";
var dir = Directory.CreateTempSubdirectory("garden-bench-").FullName;
// traversable (0711): container roots, unprivileged host uids, reach their root in the mount dir below
File.SetUnixFileMode(dir, (UnixFileMode)0b111_001_001);
var socket = Path.Combine(dir, "garden.sock");
// Container roots are mounted where a default gardend mounts them: on tmpfs (garden.mount-dir defaults to
// /run/garden-actors/mounts), in a directory of this run's own. BENCH_MOUNT_DIR=DIR puts them elsewhere (the bench before
// 2026-11-30's seventh session used DIR/mounts beside its state dir, on the ext4 root).
var mountParent = Environment.GetEnvironmentVariable("BENCH_MOUNT_DIR") is { Length: > 0 } md ? md : $"/run/garden-bench-{Environment.ProcessId}";
Directory.CreateDirectory(mountParent);
File.SetUnixFileMode(mountParent, (UnixFileMode)0b111_001_001);
var mountDir = Path.Combine(mountParent, "mounts");
File.WriteAllText(Path.Combine(dir, "bench.conf"),
    $"garden {{ agent-binary = \"{agent}\", default-rootfs = \"{rootfs}\", cgroup-parent = \"garden-bench\", mount-dir = \"{mountDir}\" }}\n" +
    // DEBUG: the timing lines of a Run ("run: ... finished in N ms"), read back below for the per-step breakdown
    "akka.loglevel = DEBUG\n" +
    // the image rows pull from a docker-registry on 127.0.0.1 over plain HTTP
    "garden.registry.insecure = [\"127.0.0.1\"]\n" +
    (poolSize > 0 ? $"garden.warm-pool.size = {poolSize}\n" : "") +
    (Environment.GetEnvironmentVariable("BENCH_EXTRA_CONF") ?? ""));
// gardend's log: the kernel steps of each container ("[container H] NAME finished in N ms") are read from it
var daemonLog = Environment.GetEnvironmentVariable("BENCH_GARDEND_LOG") ?? Path.Combine(dir, "gardend.log");
Process StartDaemon(string stateDir, string configFile)
{
    var p = Process.Start(new ProcessStartInfo("dotnet", [gardendDll, "--state-dir", stateDir, "--socket", socket, "--config", configFile])
        { RedirectStandardOutput = true, RedirectStandardError = true })!;
    var log = TextWriter.Synchronized(new StreamWriter(daemonLog, append: true) { AutoFlush = true });
    p.OutputDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
    p.ErrorDataReceived += (_, e) => { if (e.Data is not null) log.WriteLine(e.Data); };
    p.BeginOutputReadLine();
    p.BeginErrorReadLine();
    return p;
}
// An orderly stop (SIGTERM): with no container left, gardend removes its shared firewall chains and IPv6 guard then.
static void StopDaemon(Process p)
{
    if (p.HasExited) return;
    Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
    if (!p.WaitForExit(TimeSpan.FromSeconds(20))) p.Kill();
    p.WaitForExit();
}
var daemon = StartDaemon(Path.Combine(dir, "state"), Path.Combine(dir, "bench.conf"));
var json = new JsonObject();
// BENCH_ONLY=create,run,parallel,files,reattach,agent,...: only those rows (bench/run.sh runs every row). "create" is the create/run/destroy loop with its
// breakdown, the runc-with-gardend's-config floor and the persist row; "parallel" the 10-at-once row; "images" the image rows.
var only = (Environment.GetEnvironmentVariable("BENCH_ONLY") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet();
bool Want(string row) => only.Count == 0 || only.Contains(row);
// How many of a row's Creates took a pooled container (from gardend's log), printed and written into the row.
async Task ReportPool(string row, string label, string waiter, IReadOnlySet<string> handles)
{
    await Task.Delay(500);
    var pooled = Pool.Taken(daemonLog, handles);
    Console.WriteLine($"{label} {poolSize}{(poolWait ? $", {waiter} waited (unmeasured) for a full pool" : ", no wait for the refill")}: {pooled} of {handles.Count} Creates took a pooled container");
    var o = (JsonObject)json[row]!;
    o["pool_size"] = poolSize;
    o["pool_wait"] = poolWait;
    o["pooled"] = pooled;
}
try
{
    var client = new Garden.Protocol.Api.Garden.GardenClient(Channel(socket));
    await WaitForPing(client);
    if (only.Count > 0 && only.IsSubsetOf(["reattach", "density"]))
        StopDaemon(daemon); // each of these rows starts a daemon of its own on the same socket

    // warm up both sides (page cache; gardend's JIT: a daemon that has been serving runs its tiered code, where a fresh
    // one spends 2-3 ms of CPU a Run and ~10 ms a Create compiling for its first few hundred: FINDINGS-run.md,
    // FINDINGS-create.md). BENCH_WARMUP cycles of Create, five Runs and Destroy (default 20) for gardend, then more, ten
    // at a time, until its tiered compiler thread spent under 20 ms in the last ten (it has compiled what these paths run,
    // as in a daemon that has been serving for a while), at most BENCH_WARMUP_MAX cycles in all (default 400; set it to
    // BENCH_WARMUP for a fixed count); three for runc, which compiles nothing.
    var warmups = int.TryParse(Environment.GetEnvironmentVariable("BENCH_WARMUP"), out var warm) && warm >= 0 ? warm : 20;
    var warmupMax = int.TryParse(Environment.GetEnvironmentVariable("BENCH_WARMUP_MAX"), out var warmMax) && warmMax >= warmups ? warmMax : Math.Max(400, warmups);
    var warmed = 0;
    var warming = Want("create") || Want("run") || Want("destroy") || Want("parallel"); // the rows on this daemon
    var jitAtStart = warming ? Cpu.Jit(daemon.Id) : 0;
    var jitBatch = jitAtStart;
    double jitLastBatch = double.NaN;
    var warmSw = Stopwatch.StartNew();
    while (warming && warmed < warmupMax)
    {
        var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        for (var r = 0; r < 5; r++) await RunTrue(client, h);
        await client.DestroyAsync(new DestroyRequest { Handle = h });
        warmed++;
        if (warmed < warmups || warmed % 10 != 0) continue;
        var jit = Cpu.Jit(daemon.Id);
        jitLastBatch = jit - jitBatch;
        jitBatch = jit;
        if (jitLastBatch < 20) break;
    }
    if (warmed > 0)
    {
        Console.WriteLine($"warm-up: {warmed} cycles of Create, five Runs and Destroy in {warmSw.Elapsed.TotalSeconds:F1} s; gardend's tiered compiler " +
                          $"spent {Cpu.Jit(daemon.Id) - jitAtStart:F0} ms, {jitLastBatch:F0} ms in the last ten cycles");
        json["warmup_cycles"] = warmed;
        json["warmup_jit_ms"] = Math.Round(Cpu.Jit(daemon.Id) - jitAtStart);
        json["warmup_jit_last_ten_cycles_ms"] = double.IsNaN(jitLastBatch) ? null : Math.Round(jitLastBatch);
    }
    for (var i = 0; (Want("create") || Want("run") || Want("destroy") || Want("parallel")) && i < 3; i++)
    {
        var id = $"bench-warm-{i}";
        await Runc.CreateStart(dir, rootfs, id);
        await Runc.Exec(id);
        await Runc.Destroy(id);
    }

    var results = new Dictionary<string, (List<double> Gardend, List<double> Runc)>
    {
        ["create"] = ([], []), ["run"] = ([], []), ["destroy"] = ([], []),
    };
    var measured = new HashSet<string>();
    // BENCH_RUN_AFTER_MS: a pause between each Create and its Run (what of the first Run is the new container settling)
    var runAfterMs = int.TryParse(Environment.GetEnvironmentVariable("BENCH_RUN_AFTER_MS"), out var after) ? after : 0;
    var runStarted = new List<double>();
    var main = Want("create") || Want("run") || Want("destroy");
    for (var i = 0; main && i < reps; i++)
    {
        if (poolWait) await Pool.Full(daemonLog, poolSize);
        var sw = Stopwatch.StartNew();
        var handle = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        results["create"].Gardend.Add(sw.Elapsed.TotalMilliseconds);
        measured.Add(handle);
        if (runAfterMs > 0) await Task.Delay(runAfterMs);
        sw.Restart();
        await RunTrue(client, handle, sw, runStarted);
        results["run"].Gardend.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        await client.DestroyAsync(new DestroyRequest { Handle = handle });
        results["destroy"].Gardend.Add(sw.Elapsed.TotalMilliseconds);

        var id = $"bench-runc-{Environment.ProcessId}-{i}";
        sw.Restart();
        await Runc.CreateStart(dir, rootfs, id);
        results["create"].Runc.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        await Runc.Exec(id);
        results["run"].Runc.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        await Runc.Destroy(id);
        results["destroy"].Runc.Add(sw.Elapsed.TotalMilliseconds);
    }

    Console.WriteLine($"{"op",-8} {"gardend p50",12} {"p90",8} {"runc p50",10} {"p90",8} {"ratio",7}   ({reps} repetitions; runc: create+start / exec / kill+wait+delete)");
    foreach (var (op, (g, r)) in results.Where(_ => main))
    {
        var ratio = P(g, 0.5) / P(r, 0.5);
        Console.WriteLine($"{op,-8} {P(g, 0.5),12:F2} {P(g, 0.9),8:F2} {P(r, 0.5),10:F2} {P(r, 0.9),8:F2} {ratio,7:F3}");
        json[op] = new JsonObject
        {
            ["gardend_p50_ms"] = Math.Round(P(g, 0.5), 3), ["gardend_p90_ms"] = Math.Round(P(g, 0.9), 3),
            ["runc_p50_ms"] = Math.Round(P(r, 0.5), 3), ["runc_p90_ms"] = Math.Round(P(r, 0.9), 3),
            ["ratio"] = Math.Round(ratio, 3),
        };
    }
    if (main && poolSize > 0) await ReportPool("create", "warm pool: size", "each Create", measured);

    // ---- where the time goes: each kernel step of Create and Destroy and the timing lines of a Run, from gardend's log
    //      (median over the repetitions, per step), beside what the client sees from outside ----
    if (main)
    {
        await Task.Delay(1000); // the log is written by an actor: let the last lines arrive
        var breakdown = Breakdown.Read(daemonLog, measured);
        var outside = new Dictionary<string, Dictionary<string, double>>
        {
            ["create"] = new() { ["client round trip"] = P(results["create"].Gardend, 0.5) },
            ["run"] = new() { ["client round trip"] = P(results["run"].Gardend, 0.5), ["client: Started event"] = P(runStarted, 0.5) },
            ["destroy"] = new() { ["client round trip"] = P(results["destroy"].Gardend, 0.5) },
        };
        var steps = new JsonObject();
        Console.WriteLine("breakdown (p50 ms per step over the repetitions; parallel steps overlap; \"create\"/\"destroy\" is the whole kernel effect):");
        foreach (var op in new[] { "create", "run", "destroy" })
        {
            var o = new JsonObject();
            foreach (var (name, ms) in outside[op]) o[name] = Math.Round(ms, 3);
            foreach (var (name, xs) in breakdown.GetValueOrDefault(op, []).OrderByDescending(kv => P(kv.Value, 0.5)))
                o[name] = Math.Round(P(xs, 0.5), 3);
            var runcMs = P(results[op].Runc, 0.5);
            o["runc"] = Math.Round(runcMs, 3);
            steps[op] = o;
            Console.WriteLine($"  {op}: " + string.Join("; ", o.Select(kv => $"{kv.Key} {kv.Value}")));
        }
        json["breakdown"] = steps;
    }
    // ---- the floor: raw runc with gardend's own kind of config (OciBundle's: user namespace with the same mapping, no linux.seccomp (the agent installs gardend's compiled program),
    //      capabilities, masked paths, mounts, cgroup mount), /bin/sleep as init instead of the agent, no network
    //      of gardend's: create+start (two runc calls, as the runc row) and `runc run --detach` (one call, what gardend makes) ----
    if (Want("create"))
    {
        var createStart = new List<double>();
        var runDetach = new List<double>();
        var runDetachSealed = new List<double>();
        var runcSeccomp = new List<double>();
        // runc from one sealed copy of its binary, as gardend runs it (SealedExecutable): its init skips its own protection;
        // the bench's process holds the copy, sh execs it by this process's /proc path
        using var sealedRunc = Garden.Linux.Process.SealedExecutable.For(Garden.Linux.Process.Command.Resolve("runc")).Take();
        var sealedRuncPath = sealedRunc.ExecPath.Replace("/proc/self/", $"/proc/{Environment.ProcessId}/", StringComparison.Ordinal);
        for (var i = 0; i < reps; i++)
        {
            var id = $"bench-floor-{Environment.ProcessId}-{i}";
            var sw = Stopwatch.StartNew();
            await Runc.CreateStart(dir, rootfs, id, Runc.GardenConfig(rootfs, id, agent));
            createStart.Add(sw.Elapsed.TotalMilliseconds);
            await Runc.Destroy(id);
            id += "-run";
            sw.Restart();
            await Runc.RunDetached(dir, rootfs, id, Runc.GardenConfig(rootfs, id, agent));
            runDetach.Add(sw.Elapsed.TotalMilliseconds);
            await Runc.Destroy(id);
            id += "-sealed";
            sw.Restart();
            await Runc.RunDetached(dir, rootfs, id, Runc.GardenConfig(rootfs, id, agent), sealedRuncPath);
            runDetachSealed.Add(sw.Elapsed.TotalMilliseconds);
            await Runc.Destroy(id);
            id += "-seccomp";
            sw.Restart();
            await Runc.CreateStart(dir, rootfs, id, Runc.GardenConfig(rootfs, id, agent, runcSeccomp: true));
            runcSeccomp.Add(sw.Elapsed.TotalMilliseconds);
            await Runc.Destroy(id);
        }
        double cs = P(createStart, 0.5), rd = P(runDetach, 0.5), rds = P(runDetachSealed, 0.5), plain = P(results["create"].Runc, 0.5);
        var gardendCreate = P(results["create"].Gardend, 0.5);
        var rs = P(runcSeccomp, 0.5);
        Console.WriteLine($"floor: runc with gardend's config (user namespace, caps, mounts; the seccomp program is the agent's): create+start p50 {cs:F2} ms (p90 {P(createStart, 0.9):F2}), " +
                          $"run --detach p50 {rd:F2} ms (p90 {P(runDetach, 0.9):F2}), from a sealed copy (gardend's way) p50 {rds:F2} ms (p90 {P(runDetachSealed, 0.9):F2}); plain runc create+start {plain:F2} ms; gardend Create {gardendCreate:F2} ms = {gardendCreate / cs:F3}x the floor; " +
                          $"runc compiling the seccomp profile itself (gardend before): create+start p50 {rs:F2} ms");
        json["floor"] = new JsonObject
        {
            ["runc_gardend_config_create_start_p50_ms"] = Math.Round(cs, 3), ["runc_gardend_config_create_start_p90_ms"] = Math.Round(P(createStart, 0.9), 3),
            ["runc_gardend_config_run_detach_p50_ms"] = Math.Round(rd, 3), ["runc_gardend_config_run_detach_p90_ms"] = Math.Round(P(runDetach, 0.9), 3),
            ["runc_gardend_config_run_detach_sealed_p50_ms"] = Math.Round(rds, 3), ["runc_gardend_config_run_detach_sealed_p90_ms"] = Math.Round(P(runDetachSealed, 0.9), 3),
            ["runc_plain_create_start_p50_ms"] = Math.Round(plain, 3),
            ["runc_oci_seccomp_create_start_p50_ms"] = Math.Round(rs, 3),
            ["gardend_create_vs_floor"] = Math.Round(gardendCreate / cs, 3),
        };
    }

    // BENCH_ONLY=run: beside the create/run/destroy rows, the Run probe (Ping, Run on one container, detached Run, Run naming no container)
    if (only.Contains("run")) json["run_probe"] = await RunProbe(client, reps);

    // ---- user namespaces: Create (the default, unprivileged, measured above) vs privileged (host root, no user namespace),
    //      and its two parts measured alone: the namespace holder (spawn, unshare, uid/gid maps, exit) and the idmapped
    //      base under the overlay (open_tree + mount_setattr + move_mount + its unmount), against a plain overlay ----
    if (main && Want("userns"))
    {
        var privileged = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec { Privileged = true } })).Handle;
            privileged.Add(sw.Elapsed.TotalMilliseconds);
            await client.DestroyAsync(new DestroyRequest { Handle = h });
        }
        var holders = new List<double>();
        var plainMount = new List<double>();
        var idmappedMount = new List<double>();
        var namespaces = new Garden.Linux.UserNamespaces.HolderUserNamespaces(agent);
        var overlay = new Garden.Linux.Rootfs.OverlayRootfs();
        var mapping = Garden.Linux.UserNamespaces.IdMapping.Garden;
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            var holder = await namespaces.CreateAsync("bench", mapping, default);
            await holder.DisposeAsync();
            holders.Add(sw.Elapsed.TotalMilliseconds);

            var paths = new Garden.Linux.Rootfs.RootfsPaths(Path.Combine(mountDir, $"m{i}"), Path.Combine(dir, "depots", $"m{i}"));
            Directory.CreateDirectory(paths.Depot);
            sw.Restart();
            await overlay.CreateAsync("bench", rootfs, paths, null, null, default);
            plainMount.Add(sw.Elapsed.TotalMilliseconds);
            await overlay.DestroyAsync("bench", paths, default);

            await using var held = await namespaces.CreateAsync("bench", mapping, default);
            sw.Restart();
            await overlay.CreateAsync("bench", rootfs, paths, null,
                new Garden.Linux.Rootfs.UserNamespaceRoot(held.UserNamespacePath, mapping.RootUid, mapping.RootGid), default);
            idmappedMount.Add(sw.Elapsed.TotalMilliseconds);
            await overlay.DestroyAsync("bench", paths, default);
        }
        double unprivileged = P(results["create"].Gardend, 0.5), host = P(privileged, 0.5), runcCreate = P(results["create"].Runc, 0.5);
        double idmapCost = P(idmappedMount, 0.5) - P(plainMount, 0.5);
        Console.WriteLine($"userns: Create p50 {unprivileged:F2} ms unprivileged, {host:F2} ms privileged (cost {unprivileged - host:F2} ms); " +
                          $"holder p50 {P(holders, 0.5):F2} ms; overlay p50 {P(plainMount, 0.5):F2} ms plain, {P(idmappedMount, 0.5):F2} ms over an idmapped base " +
                          $"(idmapped mount {idmapCost:F2} ms); unprivileged Create / runc = {unprivileged / runcCreate:F3}, privileged / runc = {host / runcCreate:F3}");
        json["userns"] = new JsonObject
        {
            ["create_unprivileged_p50_ms"] = Math.Round(unprivileged, 3), ["create_privileged_p50_ms"] = Math.Round(host, 3),
            ["create_privileged_p90_ms"] = Math.Round(P(privileged, 0.9), 3),
            ["userns_cost_ms"] = Math.Round(unprivileged - host, 3),
            ["holder_p50_ms"] = Math.Round(P(holders, 0.5), 3), ["holder_p90_ms"] = Math.Round(P(holders, 0.9), 3),
            ["overlay_plain_p50_ms"] = Math.Round(P(plainMount, 0.5), 3),
            ["overlay_idmapped_p50_ms"] = Math.Round(P(idmappedMount, 0.5), 3), ["overlay_idmapped_p90_ms"] = Math.Round(P(idmappedMount, 0.9), 3),
            ["idmapped_mount_cost_ms"] = Math.Round(idmapCost, 3),
            ["create_unprivileged_vs_runc"] = Math.Round(unprivileged / runcCreate, 3),
            ["create_privileged_vs_runc"] = Math.Round(host / runcCreate, 3),
        };
    }

    // ---- limits: a live memory change, and Create with a disk limit versus without ----
    if (main && Want("limits"))
    {
        var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec { Limits = new Limits { MemoryBytes = 256UL << 20 } } })).Handle;
        var limit = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            await client.LimitAsync(new LimitRequest { Handle = h, Limits = new Limits { MemoryBytes = (ulong)(128 + i % 2 * 64) << 20 } });
            limit.Add(sw.Elapsed.TotalMilliseconds);
        }
        var netIn = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            await client.NetInAsync(new NetInRequest { Handle = h, HostPort = 0, ContainerPort = (uint)(8000 + i) });
            netIn.Add(sw.Elapsed.TotalMilliseconds);
        }
        json["netin"] = new JsonObject { ["p50_ms"] = Math.Round(P(netIn, 0.5), 3), ["p90_ms"] = Math.Round(P(netIn, 0.9), 3) };
        Console.WriteLine($"network: NetIn (one DNAT rule, iptables-restore batch) p50 {P(netIn, 0.5):F2} ms (p90 {P(netIn, 0.9):F2})");
        await client.DestroyAsync(new DestroyRequest { Handle = h });
        var withDisk = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            var d = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec { Limits = new Limits { DiskBytes = 1UL << 30 } } })).Handle;
            withDisk.Add(sw.Elapsed.TotalMilliseconds);
            await client.DestroyAsync(new DestroyRequest { Handle = d });
        }
        var plain = P(results["create"].Gardend, 0.5);
        Console.WriteLine($"limits: live memory change p50 {P(limit, 0.5):F2} ms (p90 {P(limit, 0.9):F2}); Create with a 1 GiB disk p50 {P(withDisk, 0.5):F2} ms vs {plain:F2} ms without");
        json["limits"] = new JsonObject
        {
            ["limit_memory_p50_ms"] = Math.Round(P(limit, 0.5), 3), ["limit_memory_p90_ms"] = Math.Round(P(limit, 0.9), 3),
            ["create_disk_p50_ms"] = Math.Round(P(withDisk, 0.5), 3), ["create_disk_p90_ms"] = Math.Round(P(withDisk, 0.9), 3),
            ["create_plain_p50_ms"] = Math.Round(plain, 3),
        };
    }

    // ---- persist cost: one journaled event (SetProperty), and Create against the SQLite journal vs an in-memory one ----
    if (main && (Want("create") || Want("persist")))
    {
        var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        var setProperty = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            await client.SetPropertyAsync(new SetPropertyRequest { Handle = h, Key = "k", Value = i.ToString() });
            setProperty.Add(sw.Elapsed.TotalMilliseconds);
        }
        await client.DestroyAsync(new DestroyRequest { Handle = h });
        StopDaemon(daemon);
        var memConf = Path.Combine(dir, "inmem.conf");
        File.WriteAllText(memConf, File.ReadAllText(Path.Combine(dir, "bench.conf")) + """

            akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
            akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
            """);
        daemon = StartDaemon(Path.Combine(dir, "state-inmem"), memConf);
        await WaitForPing(client);
        var inmemCreate = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            var ih = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
            inmemCreate.Add(sw.Elapsed.TotalMilliseconds);
            await client.DestroyAsync(new DestroyRequest { Handle = ih });
        }
        StopDaemon(daemon);
        var sqliteCreate = P(results["create"].Gardend, 0.5);
        Console.WriteLine($"persist: one journaled event (SetProperty) p50 {P(setProperty, 0.5):F2} ms; Create p50 {sqliteCreate:F2} ms with the SQLite journal, {P(inmemCreate, 0.5):F2} ms in memory (3 events per Create)");
        json["persist"] = new JsonObject
        {
            ["event_p50_ms"] = Math.Round(P(setProperty, 0.5), 3), ["event_p90_ms"] = Math.Round(P(setProperty, 0.9), 3),
            ["create_sqlite_p50_ms"] = Math.Round(sqliteCreate, 3), ["create_inmem_p50_ms"] = Math.Round(P(inmemCreate, 0.5), 3),
            ["create_persist_cost_ms"] = Math.Round(sqliteCreate - P(inmemCreate, 0.5), 3),
        };
    }

    // ---- network cost: Create and Destroy with a network (the default, measured above) vs the same daemon without ----
    if (main && Want("network"))
    {
        var offConf = Path.Combine(dir, "nonet.conf");
        File.WriteAllText(offConf, File.ReadAllText(Path.Combine(dir, "bench.conf")) + "\ngarden.network.enabled = off\n");
        daemon = StartDaemon(Path.Combine(dir, "state-nonet"), offConf);
        await WaitForPing(client);
        var create = new List<double>();
        var destroy = new List<double>();
        for (var i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
            create.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            await client.DestroyAsync(new DestroyRequest { Handle = h });
            destroy.Add(sw.Elapsed.TotalMilliseconds);
        }
        StopDaemon(daemon);
        double withNet = P(results["create"].Gardend, 0.5), without = P(create, 0.5), runc = P(results["create"].Runc, 0.5);
        double dWithNet = P(results["destroy"].Gardend, 0.5), dWithout = P(destroy, 0.5);
        Console.WriteLine($"network: Create p50 {withNet:F2} ms with a network, {without:F2} ms without (setup {withNet - without:F2} ms); " +
                          $"Destroy p50 {dWithNet:F2} ms with, {dWithout:F2} ms without (teardown {dWithNet - dWithout:F2} ms); Create with network / runc = {withNet / runc:F3} (goal <= 1.15)");
        json["network"] = new JsonObject
        {
            ["create_with_network_p50_ms"] = Math.Round(withNet, 3), ["create_without_network_p50_ms"] = Math.Round(without, 3),
            ["setup_cost_ms"] = Math.Round(withNet - without, 3),
            ["destroy_with_network_p50_ms"] = Math.Round(dWithNet, 3), ["destroy_without_network_p50_ms"] = Math.Round(dWithout, 3),
            ["teardown_cost_ms"] = Math.Round(dWithNet - dWithout, 3),
            ["create_with_network_vs_runc"] = Math.Round(withNet / runc, 3),
        };
    }

    // ---- reattach: N containers each running a process, kill -9, start again: until Ping, until all attachable ----
    if (Want("reattach"))
    {
        var n = int.Parse(Environment.GetEnvironmentVariable("BENCH_REATTACH_CONTAINERS") ?? "100");
        // a selection without the rows before this one finds the first daemon still serving on the same socket: it would
        // answer the Pings below (and outlive the bench, holding its lock)
        StopDaemon(daemon);
        daemon = StartDaemon(Path.Combine(dir, "state-reattach"), Path.Combine(dir, "bench.conf"));
        await WaitForPing(client);
        var handles = new List<string>();
        for (var i = 0; i < n; i++)
        {
            var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec { Handle = $"reattach-{i}" } })).Handle;
            using var run = client.Run();
            await run.RequestStream.WriteAsync(new RunRequest { Handle = h, Detach = true, Spec = new ProcessSpec { Id = "p", Path = "/bin/sleep", Args = { "100000" } } });
            await run.RequestStream.CompleteAsync();
            while (await run.ResponseStream.MoveNext(default)) { }
            handles.Add(h);
        }
        daemon.Kill(); // SIGKILL
        daemon.WaitForExit();
        var sw = Stopwatch.StartNew();
        Console.WriteLine($"reattach: restarting at {DateTime.UtcNow:HH:mm:ss.fff}");
        daemon = StartDaemon(Path.Combine(dir, "state-reattach"), Path.Combine(dir, "bench.conf"));
        await WaitForPing(client, pollMs: 5);
        var ping = sw.Elapsed.TotalMilliseconds;
        await Task.WhenAll(handles.Select(async h =>
        {
            using var attach = client.Attach();
            await attach.RequestStream.WriteAsync(new AttachRequest { Handle = h, ProcessId = "p" });
            if (!await attach.ResponseStream.MoveNext(default) || attach.ResponseStream.Current.KindCase != ProcessEvent.KindOneofCase.Started)
                throw new InvalidOperationException($"{h}: not attachable");
        }));
        var all = sw.Elapsed.TotalMilliseconds;
        Console.WriteLine($"reattach: {n} containers, kill -9, restart: Ping answers after {ping:F0} ms, every container attachable after {all:F0} ms (goal <= 1000)");
        json["reattach"] = new JsonObject { ["containers"] = n, ["ping_ms"] = Math.Round(ping, 1), ["all_attachable_ms"] = Math.Round(all, 1) };
        foreach (var h in handles) await client.DestroyAsync(new DestroyRequest { Handle = h });
    }

    // ---- files and output: StreamIn/StreamOut of a 200 MB tree (200 files of 1 MB), stdout of `cat` of a 200 MB file ----
    //      BENCH_FILES_REPS rounds (default 5) on one container, each StreamIn into a directory of its own: the row is each
    //      transfer's median, and the first round's rates stay in the JSON (`first_*`): the first streams of a gardend, and
    //      of this client, pay for the JIT of their data paths (bench/FINDINGS-streams.md: rounds 1-2 at 160-260 MB/s, the
    //      third at 250-370 on the same host), which a daemon and a client that have streamed before do not.
    if (Want("files"))
    {
        if (daemon.HasExited)
        {
            daemon = StartDaemon(Path.Combine(dir, "state-files"), Path.Combine(dir, "bench.conf"));
            await WaitForPing(client);
        }
        const int files = 200, fileBytes = 1 << 20;
        const double mb = files * (double)fileBytes / (1 << 20);
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("BENCH_FILES_REPS"), out var fr) && fr > 0 ? fr : 5;
        var tarPath = Path.Combine(dir, "tree.tar");
        using (var fs = File.Create(tarPath))
        using (var w = new System.Formats.Tar.TarWriter(fs, System.Formats.Tar.TarEntryFormat.Pax))
        {
            var data = new byte[fileBytes];
            Random.Shared.NextBytes(data);
            for (var i = 0; i < files; i++)
                w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, $"tree/f{i:D3}")
                    { DataStream = new MemoryStream(data) });
        }
        var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        List<double> ins = [], outs = [], cats = [];
        long outBytes = 0, catBytes = 0;
        for (var round = 0; round < rounds; round++)
        {
            var sw = Stopwatch.StartNew();
            using (var call = client.StreamIn())
            {
                await call.RequestStream.WriteAsync(new StreamInRequest { Handle = h, Path = $"/bench{round}" });
                using var fs = File.OpenRead(tarPath);
                var buf = new byte[256 * 1024];
                int n;
                // the buffer wrapped, not copied: gRPC has serialized each message when WriteAsync completes
                while ((n = await fs.ReadAsync(buf)) > 0)
                    await call.RequestStream.WriteAsync(new StreamInRequest { Data = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(buf.AsMemory(0, n)) });
                await call.RequestStream.CompleteAsync();
                await call.ResponseAsync;
            }
            ins.Add(mb / sw.Elapsed.TotalSeconds);

            sw.Restart();
            outBytes = 0;
            using (var call = client.StreamOut(new StreamOutRequest { Handle = h, Path = $"/bench{round}/tree" }))
                while (await call.ResponseStream.MoveNext(default)) outBytes += call.ResponseStream.Current.Data.Length;
            outs.Add(outBytes / (double)(1 << 20) / sw.Elapsed.TotalSeconds);

            await RunOutput(client, h, "sh", "-c", $"cat /bench{round}/tree/* > /big && rm -r /bench{round}");
            sw.Restart();
            catBytes = await RunOutput(client, h, "cat", "/big");
            cats.Add(catBytes / (double)(1 << 20) / sw.Elapsed.TotalSeconds);
            Console.WriteLine($"files round {round + 1}/{rounds}: StreamIn {ins[^1]:F0} MB/s; StreamOut {outs[^1]:F0} MB/s; Run `cat` stdout {cats[^1]:F0} MB/s");
        }
        File.Delete(tarPath);
        await client.DestroyAsync(new DestroyRequest { Handle = h });

        double Median(List<double> xs) { var o = xs.Order().ToList(); return o.Count % 2 == 1 ? o[o.Count / 2] : (o[o.Count / 2 - 1] + o[o.Count / 2]) / 2; }
        var (inMbs, outMbs, catMbs) = (Median(ins), Median(outs), Median(cats));
        Console.WriteLine($"files: StreamIn {mb:F0} MB ({files} files) {inMbs:F0} MB/s; StreamOut {outBytes >> 20} MB {outMbs:F0} MB/s; " +
                          $"Run `cat` of {catBytes >> 20} MB: stdout {catMbs:F0} MB/s (medians of {rounds}; first {ins[0]:F0} / {outs[0]:F0} / {cats[0]:F0})");
        json["files"] = new JsonObject
        {
            ["stream_in_mb_per_s"] = Math.Round(inMbs, 1), ["stream_out_mb_per_s"] = Math.Round(outMbs, 1),
            ["run_cat_stdout_mb_per_s"] = Math.Round(catMbs, 1), ["tree_mb"] = mb, ["files"] = files, ["rounds"] = rounds,
            ["first_stream_in_mb_per_s"] = Math.Round(ins[0], 1), ["first_stream_out_mb_per_s"] = Math.Round(outs[0], 1),
            ["first_run_cat_stdout_mb_per_s"] = Math.Round(cats[0], 1),
            ["stream_in_mb_per_s_all"] = new JsonArray(ins.Select(x => (JsonNode)Math.Round(x, 1)).ToArray()),
            ["stream_out_mb_per_s_all"] = new JsonArray(outs.Select(x => (JsonNode)Math.Round(x, 1)).ToArray()),
            ["run_cat_stdout_mb_per_s_all"] = new JsonArray(cats.Select(x => (JsonNode)Math.Round(x, 1)).ToArray()),
        };
    }

    // ---- parallel: 10 Creates at once through gardend vs 10 runc create+start at once; containers per second. Beside it
    //      the floor (10 runc at once with gardend's config, as the floor row) and the CPU each container costs: gardend's
    //      own and its children's (runc, ip, iptables, the namespace holder), from /proc/PID/stat; runc's from this
    //      process's children (the runc calls). On 2 cores, containers per second is bounded by 2 s / CPU per container. ----
    if (Want("parallel"))
    {
        if (daemon.HasExited)
        {
            daemon = StartDaemon(Path.Combine(dir, "state-parallel"), Path.Combine(dir, "bench.conf"));
            await WaitForPing(client);
        }
        const int width = 10;
        var rounds = Math.Max(3, reps / 6);
        // BENCH_PARALLEL_SETTLE_MS: a pause before each measured burst, so the kernel's teardown of the burst before it
        // (network and user namespaces, mounts: asynchronous, after every destroy has answered) is not inside it
        var settle = TimeSpan.FromMilliseconds(int.TryParse(Environment.GetEnvironmentVariable("BENCH_PARALLEL_SETTLE_MS"), out var sm) ? sm : 0);
        var gardendRates = new List<double>();
        var runcRates = new List<double>();
        var floorRates = new List<double>();
        double gardendCpu = 0, gardendOwnCpu = 0, runcCpu = 0, floorCpu = 0;
        var parallelHandles = new HashSet<string>();
        for (var r = 0; r < rounds; r++)
        {
            if (poolWait) await Pool.Full(daemonLog, poolSize);
            await Task.Delay(settle);
            var cpu = Cpu.Ms(daemon.Id);
            var own = Cpu.Own(daemon.Id);
            var sw = Stopwatch.StartNew();
            var hs = await Task.WhenAll(Enumerable.Range(0, width).Select(async _ =>
                (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle));
            gardendRates.Add(width / sw.Elapsed.TotalSeconds);
            gardendCpu += Cpu.Ms(daemon.Id) - cpu;
            gardendOwnCpu += Cpu.Own(daemon.Id) - own;
            parallelHandles.UnionWith(hs);
            await Task.WhenAll(hs.Select(async h => await client.DestroyAsync(new DestroyRequest { Handle = h })));

            var ids = Enumerable.Range(0, width).Select(i => $"bench-par-{Environment.ProcessId}-{r}-{i}").ToList();
            await Task.Delay(settle);
            cpu = Cpu.Ms(Environment.ProcessId);
            sw.Restart();
            await Task.WhenAll(ids.Select(id => Runc.CreateStart(dir, rootfs, id)));
            runcRates.Add(width / sw.Elapsed.TotalSeconds);
            runcCpu += Cpu.Ms(Environment.ProcessId) - cpu;
            await Task.WhenAll(ids.Select(Runc.Destroy));

            ids = Enumerable.Range(0, width).Select(i => $"bench-parfloor-{Environment.ProcessId}-{r}-{i}").ToList();
            await Task.Delay(settle);
            cpu = Cpu.Ms(Environment.ProcessId);
            sw.Restart();
            await Task.WhenAll(ids.Select(id => Runc.CreateStart(dir, rootfs, id, Runc.GardenConfig(rootfs, id, agent))));
            floorRates.Add(width / sw.Elapsed.TotalSeconds);
            floorCpu += Cpu.Ms(Environment.ProcessId) - cpu;
            await Task.WhenAll(ids.Select(Runc.Destroy));
        }
        double g = P(gardendRates, 0.5), rr = P(runcRates, 0.5), f = P(floorRates, 0.5), n = rounds * width;
        Console.WriteLine($"parallel: {width} Creates at once, {rounds} rounds: gardend {g:F1} containers/s, runc {rr:F1}/s, ratio {g / rr:F3} (target >= 0.9); " +
                          $"runc with gardend's config {f:F1}/s (gardend / that {g / f:F3}); CPU per container: gardend and its children {gardendCpu / n:F0} ms " +
                          $"(gardend's own {gardendOwnCpu / n:F0}), " +
                          $"runc {runcCpu / n:F0} ms, runc with gardend's config {floorCpu / n:F0} ms; gardend by round: {string.Join(" ", gardendRates.Select(x => x.ToString("F1")))}");
        json["parallel"] = new JsonObject
        {
            ["width"] = width, ["rounds"] = rounds,
            ["gardend_containers_per_s"] = Math.Round(g, 2), ["runc_containers_per_s"] = Math.Round(rr, 2), ["ratio"] = Math.Round(g / rr, 3),
            ["runc_gardend_config_containers_per_s"] = Math.Round(f, 2), ["ratio_vs_runc_gardend_config"] = Math.Round(g / f, 3),
            ["gardend_cpu_ms_per_container"] = Math.Round(gardendCpu / n, 1), ["gardend_own_cpu_ms_per_container"] = Math.Round(gardendOwnCpu / n, 1),
            ["runc_cpu_ms_per_container"] = Math.Round(runcCpu / n, 1),
            ["runc_gardend_config_cpu_ms_per_container"] = Math.Round(floorCpu / n, 1),
        };
        if (poolSize > 0) await ReportPool("parallel", "parallel: warm pool size", "each round", parallelHandles);
    }

    // ---- density (opt-in, BENCH_DENSITY=N, e.g. 250; takes minutes): N networked containers each running a process:
    //      gardend's RSS, host memory per container (PSS of its agent and spawner, and of everything in its cgroup), then kill -9 of
    //      gardend and the time until every container answers Info; everything destroyed and counted afterwards ----
    var density = int.TryParse(Environment.GetEnvironmentVariable("BENCH_DENSITY"), out var dn) && dn > 0 ? dn : only.Contains("density") ? 250 : 0;
    if (density > 0 && (only.Count == 0 || only.Contains("density")))
    {
        StopDaemon(daemon);
        daemon = StartDaemon(Path.Combine(dir, "state-density"), Path.Combine(dir, "bench.conf"));
        await WaitForPing(client);
        var handles = new List<string>();
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < density; i++)
        {
            var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec { Handle = $"density-{i}" } })).Handle;
            using var run = client.Run();
            await run.RequestStream.WriteAsync(new RunRequest { Handle = h, Detach = true, Spec = new ProcessSpec { Id = "p", Path = "/bin/sleep", Args = { "100000" } } });
            await run.RequestStream.CompleteAsync();
            while (await run.ResponseStream.MoveNext(default)) { }
            handles.Add(h);
        }
        var createAll = sw.Elapsed.TotalSeconds;
        await Task.Delay(2000); // let the allocations of the creates settle
        var rssMb = Density.RssKb(daemon.Id) / 1024.0;
        var (agents, agentPssKb, spawners, spawnerPssKb, allPssKb, gardenKernelKb, agentThreads) = Density.PssInCgroup("garden-bench");
        // Garden's own per container: its agent and the agent's spawner (a container whose spawner is gone, or not started
        // yet, counts what it has)
        double agentOnlyMb = agents == 0 ? 0 : agentPssKb / 1024.0 / agents, perContainerMb = allPssKb / 1024.0 / density;
        double agentMb = agents == 0 ? 0 : (agentPssKb + spawnerPssKb) / 1024.0 / agents;
        daemon.Kill(); // SIGKILL
        daemon.WaitForExit();
        sw.Restart();
        daemon = StartDaemon(Path.Combine(dir, "state-density"), Path.Combine(dir, "bench.conf"));
        await WaitForPing(client, pollMs: 5);
        await Task.WhenAll(handles.Select(async h =>
        {
            for (var attempt = 0; ; attempt++)
            {
                try { await client.InfoAsync(new InfoRequest { Handle = h }); return; }
                catch (RpcException) when (attempt < 2000) { await Task.Delay(5); }
            }
        }));
        var allInfo = sw.Elapsed.TotalMilliseconds;
        var rssAfterMb = Density.RssKb(daemon.Id) / 1024.0;
        sw.Restart();
        foreach (var h in handles) await client.DestroyAsync(new DestroyRequest { Handle = h });
        var destroyAll = sw.Elapsed.TotalSeconds;
        var left = Density.CgroupsLeft("garden-bench");
        Console.WriteLine($"density: {density} networked containers created in {createAll:F1} s; gardend RSS {rssMb:F0} MB ({rssAfterMb:F0} MB after the restart); " +
                          $"agent + spawner PSS {agentMb:F2} MB per container ({agentOnlyMb:F2} agent, {spawners} spawners {(spawners == 0 ? 0 : spawnerPssKb / 1024.0 / spawners):F2}; " +
                          $"their page tables and kernel stacks {(agents == 0 ? 0 : gardenKernelKb / 1024.0 / agents):F2} MB; {(agents == 0 ? 0 : (double)agentThreads / agents):F1} threads per agent), " +
                          $"everything in a container's cgroup {perContainerMb:F2} MB; " +
                          $"kill -9 -> all {density} answer Info after {allInfo:F0} ms; destroyed in {destroyAll:F1} s, {left} container cgroups left");
        json["density"] = new JsonObject
        {
            ["containers"] = density, ["create_all_s"] = Math.Round(createAll, 2),
            ["gardend_rss_mb"] = Math.Round(rssMb, 1), ["gardend_rss_after_restart_mb"] = Math.Round(rssAfterMb, 1),
            // agent_pss_mb_per_container: the agent's PSS plus its spawner's (the goal's "host memory per container")
            ["agent_pss_mb_per_container"] = Math.Round(agentMb, 3), ["agent_only_pss_mb"] = Math.Round(agentOnlyMb, 3),
            ["spawners"] = spawners, ["spawner_pss_mb"] = Math.Round(spawners == 0 ? 0 : spawnerPssKb / 1024.0 / spawners, 3),
            ["agent_kernel_mb_per_container"] = Math.Round(agents == 0 ? 0 : gardenKernelKb / 1024.0 / agents, 3),
            ["agent_threads"] = Math.Round(agents == 0 ? 0 : (double)agentThreads / agents, 1),
            ["container_pss_mb_per_container"] = Math.Round(perContainerMb, 3),
            ["kill9_all_info_ms"] = Math.Round(allInfo, 1), ["destroy_all_s"] = Math.Round(destroyAll, 2), ["cgroups_left"] = left,
        };
    }

    if (Want("images")) json["images"] = await ImageBench.RunAsync(client, Path.Combine(dir, "state"), reps);

    // the agent alone, in a sandbox of its own (the probes that were in the agent tests)
    if (Want("agent")) json["agent"] = await AgentProbes.RunAsync(agent, rootfs);

    Summary.Print(json);
    // a selection writes its rows beside latest.json (latest-reattach.json ...), which stays the full run's
    if (only.Count > 0 || poolSize > 0)
        resultsFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(resultsFile))!,
            $"latest-{string.Join('-', only.Order().DefaultIfEmpty("all"))}{(poolSize > 0 ? $"-pool{poolSize}" : "")}.json");
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(resultsFile))!);
    File.WriteAllText(resultsFile, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"written {resultsFile}");
}
finally
{
    StopDaemon(daemon);
    Directory.Delete(dir, true);
    if (Directory.Exists(mountDir) && !Directory.EnumerateFileSystemEntries(mountDir).Any()) Directory.Delete(mountDir);
    if (Environment.GetEnvironmentVariable("BENCH_MOUNT_DIR") is not { Length: > 0 } && !Directory.EnumerateFileSystemEntries(mountParent).Any())
        Directory.Delete(mountParent);
}

static double P(List<double> xs, double q) { var s = xs.Order().ToList(); return s[(int)Math.Min(s.Count - 1, Math.Floor(q * s.Count))]; }

static GrpcChannel Channel(string socket) => Garden.Protocol.Client.GrpcGardenClient.UnixSocketChannel(socket);

/// <summary>What sits under a Run: a Ping round trip (gRPC over the unix socket alone), Run /bin/true again and again on
/// one container (no Create before it), a detached Run (Started only: no exit to wait for), and a Run naming no container
/// (the gRPC streaming call and one actor hop, no agent).</summary>
static async Task<JsonObject> RunProbe(Garden.Protocol.Api.Garden.GardenClient client, int reps)
{
    var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
    var ping = new List<double>();
    var again = new List<double>();
    var started = new List<double>();
    var detached = new List<double>();
    for (var i = 0; i < 3 * reps; i++)
    {
        var sw = Stopwatch.StartNew();
        await client.PingAsync(new PingRequest());
        ping.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        await RunTrue(client, h, sw, started);
        again.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        using (var run = client.Run())
        {
            await run.RequestStream.WriteAsync(new RunRequest { Handle = h, Detach = true, Spec = new ProcessSpec { Path = "/bin/true" } });
            await run.RequestStream.CompleteAsync();
            while (await run.ResponseStream.MoveNext(default)) { }
        }
        detached.Add(sw.Elapsed.TotalMilliseconds);
    }
    // the gRPC streaming call alone, and one hop to the host actor: a Run that names no container fails there
    var unknown = new List<double>();
    for (var i = 0; i < 3 * reps; i++)
    {
        var sw = Stopwatch.StartNew();
        using var run = client.Run();
        await run.RequestStream.WriteAsync(new RunRequest { Handle = "bench-no-such-container", Spec = new ProcessSpec { Path = "/bin/true" } });
        await run.RequestStream.CompleteAsync();
        try { while (await run.ResponseStream.MoveNext(default)) { } } catch (RpcException) { }
        unknown.Add(sw.Elapsed.TotalMilliseconds);
    }
    await client.DestroyAsync(new DestroyRequest { Handle = h });
    var o = new JsonObject
    {
        ["run_unknown_handle_p50_ms"] = Math.Round(P(unknown, 0.5), 3), ["run_unknown_handle_p10_ms"] = Math.Round(P(unknown, 0.1), 3),
        ["ping_p50_ms"] = Math.Round(P(ping, 0.5), 3), ["ping_p10_ms"] = Math.Round(P(ping, 0.1), 3),
        ["run_same_container_p50_ms"] = Math.Round(P(again, 0.5), 3), ["run_same_container_p10_ms"] = Math.Round(P(again, 0.1), 3),
        ["run_same_container_started_p50_ms"] = Math.Round(P(started, 0.5), 3),
        ["run_detached_p50_ms"] = Math.Round(P(detached, 0.5), 3), ["run_detached_p10_ms"] = Math.Round(P(detached, 0.1), 3),
    };
    Console.WriteLine("run probe: " + string.Join("; ", o.Select(kv => $"{kv.Key} {kv.Value}")));
    return o;
}

static async Task WaitForPing(Garden.Protocol.Api.Garden.GardenClient client, int pollMs = 100)
{
    for (var i = 0; i < 30_000 / pollMs; i++)
    {
        try { await client.PingAsync(new PingRequest()); return; }
        catch (RpcException) { await Task.Delay(pollMs); }
    }
    throw new TimeoutException("gardend did not answer");
}

static async Task RunTrue(Garden.Protocol.Api.Garden.GardenClient client, string handle, Stopwatch? clock = null, List<double>? started = null)
{
    using var call = client.Run();
    await call.RequestStream.WriteAsync(new RunRequest { Handle = handle, Spec = new ProcessSpec { Path = "/bin/true" } });
    await call.RequestStream.CompleteAsync();
    while (await call.ResponseStream.MoveNext(default))
    {
        if (call.ResponseStream.Current.KindCase == ProcessEvent.KindOneofCase.Started && clock is not null)
            started?.Add(clock.Elapsed.TotalMilliseconds);
        if (call.ResponseStream.Current.KindCase == ProcessEvent.KindOneofCase.Exited)
        {
            if (call.ResponseStream.Current.Exited.ExitCode != 0) throw new InvalidOperationException("/bin/true failed");
            return;
        }
    }
    throw new InvalidOperationException("no exit");
}

/// <summary>Runs a command to its exit; returns how many bytes of stdout it produced.</summary>
static async Task<long> RunOutput(Garden.Protocol.Api.Garden.GardenClient client, string handle, string path, params string[] args)
{
    using var call = client.Run();
    var spec = new ProcessSpec { Path = path };
    spec.Args.AddRange(args);
    await call.RequestStream.WriteAsync(new RunRequest { Handle = handle, Spec = spec });
    await call.RequestStream.CompleteAsync();
    long bytes = 0;
    while (await call.ResponseStream.MoveNext(default))
    {
        var e = call.ResponseStream.Current;
        if (e.KindCase == ProcessEvent.KindOneofCase.Output && e.Output.Stream == Output.Types.Stream.Stdout) bytes += e.Output.Data.Length;
        if (e.KindCase == ProcessEvent.KindOneofCase.Exited)
        {
            if (e.Exited.ExitCode != 0) throw new InvalidOperationException($"{path} failed with {e.Exited.ExitCode}");
            return bytes;
        }
    }
    throw new InvalidOperationException("no exit");
}

/// <summary>gardend's step lines ("[container H] NAME finished in N ms", the Run timing lines "run: NAME finished in N ms"
/// at DEBUG) of the given containers, by operation (create, run, destroy) and step name.</summary>
static partial class Breakdown
{
    [System.Text.RegularExpressions.GeneratedRegex(@"\[container (?<h>[^\]]+)\](?:\[[^\]]*\])*\s*(?<step>.+?) finished in (?<ms>[0-9.]+) ms")]
    private static partial System.Text.RegularExpressions.Regex Line();

    public static Dictionary<string, Dictionary<string, List<double>>> Read(string log, HashSet<string> handles)
    {
        var ops = new Dictionary<string, Dictionary<string, List<double>>>();
        if (!File.Exists(log)) return ops;
        foreach (var text in File.ReadLines(log))
        {
            var m = Line().Match(text);
            if (!m.Success || !handles.Contains(m.Groups["h"].Value)) continue;
            var step = m.Groups["step"].Value;
            if (step.StartsWith("user namespace", StringComparison.Ordinal)) step = "user namespace";
            // the journal's lines ("journal CreateStarted", ..., DEBUG) by their record
            var op = step.StartsWith("run: ", StringComparison.Ordinal) || step.StartsWith("journal Process", StringComparison.Ordinal) ? "run"
                : step is "destroy" or "processes" or "release" || step.EndsWith(" removal", StringComparison.Ordinal)
                  || step is "journal LifecycleChanged" ? "destroy"
                : "create";
            if (op == "run") step = step["run: ".Length..];
            var steps = ops.TryGetValue(op, out var s) ? s : ops[op] = [];
            (steps.TryGetValue(step, out var xs) ? xs : steps[step] = []).Add(double.Parse(m.Groups["ms"].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        return ops;
    }
}

static class Runc
{
    // The same rootfs, read-only, with a long sleep as init: the plainest container runc can run.
    public static async Task CreateStart(string dir, string rootfs, string id, string? config = null)
    {
        var bundle = Path.Combine(dir, id);
        Directory.CreateDirectory(bundle);
        File.WriteAllText(Path.Combine(bundle, "config.json"), config ?? Config(rootfs, id));
        await Run("runc", "create", "--bundle", bundle, id);
        await Run("runc", "start", id);
    }

    /// <summary>`runc run --detach` (one runc call, as gardend starts its containers); stdio /dev/null, as gardend's.</summary>
    public static async Task RunDetached(string dir, string rootfs, string id, string config, string runc = "runc")
    {
        var bundle = Path.Combine(dir, id);
        Directory.CreateDirectory(bundle);
        File.WriteAllText(Path.Combine(bundle, "config.json"), config);
        // its init inherits runc's stdio (a pipe would never end): /dev/null through sh's exec (about 1 ms of the measure)
        await Run("sh", "-c", $"exec {runc} run --detach --bundle '{bundle}' '{id}' </dev/null >/dev/null 2>&1");
    }

    /// <summary>gardend's own config for an unprivileged container (OciBundle: user namespace with Garden's mapping made by
    /// runc, the seccomp allow-list, Garden's capabilities, masked and read-only paths, /dev/shm, mqueue, the cgroup mount),
    /// with /bin/sleep as init instead of the agent (and without its bind mount), a read-only root (the shared base, not
    /// gardend's overlay) and a network namespace of runc's own.</summary>
    /// <para>As gardend's bundle, it has no linux.seccomp: gardend compiles the profile once and its agent installs the
    /// program (one seccomp(2) call, not in this floor, whose init is sleep). <paramref name="runcSeccomp"/>: runc compiles
    /// the profile itself, as gardend had it before (the floor's reference line).</para></summary>
    public static string GardenConfig(string rootfs, string id, string agent, bool runcSeccomp = false)
    {
        var spec = new Garden.Linux.Runtime.BundleSpec(id, rootfs, agent, "", "", $"/garden-bench-runc/{id}", Privileged: false, [],
            UserNamespace: new Garden.Linux.Runtime.BundleUserNamespace("", Garden.Linux.UserNamespaces.IdMapping.Garden),
            AgentSeccomp: runcSeccomp ? Garden.Linux.Runtime.AgentSeccomp.None : Garden.Linux.Runtime.AgentSeccomp.Whole);
        var config = JsonNode.Parse(Garden.Linux.Runtime.OciBundle.ToJson(spec))!.AsObject();
        config["process"]!["args"] = new JsonArray("/bin/sleep", "100000");
        config["root"]!["readonly"] = true;
        // the agent's bind mount goes (its mount point is host root's, which a user namespace without gardend's idmapped
        // base cannot open; sleep is init here)
        var mounts = config["mounts"]!.AsArray();
        foreach (var m in mounts.Where(m => (string?)m!["destination"] == Garden.Linux.Runtime.OciBundle.AgentPathInContainer).ToList()) mounts.Remove(m);
        foreach (var ns in config["linux"]!["namespaces"]!.AsArray()) ns!.AsObject().Remove("path"); // runc makes the user namespace
        return config.ToJsonString();
    }

    public static Task Exec(string id) => Run("runc", "exec", id, "/bin/true");

    public static async Task Destroy(string id)
    {
        await Run("runc", "kill", id, "KILL");
        for (var i = 0; i < 1000; i++)
        {
            var state = await Output("runc", "state", id);
            if (state.Contains("\"stopped\"")) break;
            await Task.Delay(1);
        }
        await Run("runc", "delete", id);
    }

    private static string Config(string rootfs, string id) => $$$"""
        {"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},"args":["/bin/sleep","100000"],
         "env":["PATH=/bin:/usr/bin"],"cwd":"/"},
         "root":{"path":"{{{rootfs}}}","readonly":true},"hostname":"{{{id}}}",
         "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
           {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
           {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
           {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]}],
         "linux":{"cgroupsPath":"/garden-bench-runc/{{{id}}}","namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}],
           "maskedPaths":["/proc/kcore","/proc/keys","/sys/firmware"],"readonlyPaths":["/proc/sys"]}}
        """;

    private static async Task Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = false, RedirectStandardInput = false };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {await err}");
    }

    private static async Task<string> Output(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var o = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        return o;
    }
}

/// <summary>CPU time of a process and of its reaped children (utime + stime + cutime + cstime of /proc/PID/stat), in ms.</summary>
static class Cpu
{
    public static double Ms(int pid) => Own(pid) + Children(pid);

    /// <summary>utime + stime (fields 14, 15).</summary>
    public static double Own(int pid) => Fields(pid, 11, 2);

    /// <summary>cutime + cstime (fields 16, 17): its children that it reaped.</summary>
    public static double Children(int pid) => Fields(pid, 13, 2);

    /// <summary>CPU of the runtime's tiered compilation thread(s) (the background JIT), from /proc/PID/task.</summary>
    public static double Jit(int pid)
    {
        double ms = 0;
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith(".NET Tiered Com", StringComparison.Ordinal))
                    ms += Fields(Path.Combine(task, "stat"), 11, 2);
            }
            catch (IOException) { }   // the thread ended
        }
        return ms;
    }

    private static double Fields(int pid, int from, int count) => Fields($"/proc/{pid}/stat", from, count);

    private static double Fields(string path, int from, int count)
    {
        var stat = File.ReadAllText(path);
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // fields[0] is field 3 (state)
        return Enumerable.Range(from, count).Sum(i => long.Parse(fields[i], System.Globalization.CultureInfo.InvariantCulture)) * 1000.0 / 100; // USER_HZ
    }
}

/// <summary>Host-side memory numbers for the density run, read from /proc.</summary>
static class Density
{
    public static long RssKb(int pid) => Field($"/proc/{pid}/status", "VmRSS:");

    /// <summary>What a container costs the host beyond what its own processes use, read from /proc for every process whose v1
    /// memory cgroup (or v2 cgroup) is under /<paramref name="parent"/>/: its agent (comm garden-init, PID 1 of a container,
    /// or garden-agent, a pea's) and the agent's fork server (garden-spawner, in the container's work cgroup), which are
    /// Garden's, against everything (the container's own processes too). PSS in kB: what is shared (the agent's binary,
    /// mapped by every agent and spawner) is divided among its mappers. Kernel memory outside PSS, per agent and spawner:
    /// their page tables (VmPTE) and a kernel stack per thread (THREAD_SIZE, 16 KiB on x86-64).</summary>
    public static (int Agents, long AgentPssKb, int Spawners, long SpawnerPssKb, long AllPssKb, long GardenKernelKb, long AgentThreads) PssInCgroup(string parent)
    {
        int agents = 0, spawners = 0;
        long agentPss = 0, spawnerPss = 0, all = 0, kernel = 0, threads = 0;
        foreach (var d in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(d), out _)) continue;
            try
            {
                var cg = File.ReadAllText(Path.Combine(d, "cgroup"));
                if (!cg.Split('\n').Any(l => (l.Contains(":memory:") || l.StartsWith("0::", StringComparison.Ordinal)) && l.Contains($"/{parent}/"))) continue;
                var pss = Field(Path.Combine(d, "smaps_rollup"), "Pss:");
                all += pss;
                var comm = File.ReadAllText(Path.Combine(d, "comm")).Trim();
                if (comm is not ("garden-agent" or "garden-init" or "garden-spawner")) continue;
                var status = Path.Combine(d, "status");
                long n = Field(status, "Threads:");
                kernel += Field(status, "VmPTE:") + 16 * n;
                if (comm == "garden-spawner") { spawners++; spawnerPss += pss; }
                else { agents++; agentPss += pss; threads += n; }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // gone meanwhile
        }
        return (agents, agentPss, spawners, spawnerPss, all, kernel, threads);
    }

    public static int CgroupsLeft(string parent)
    {
        var n = 0;
        foreach (var root in new[] { "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup" })
        {
            var dir = Path.Combine(root, parent);
            if (Directory.Exists(dir)) n += Directory.GetDirectories(dir).Length;
        }
        return n;
    }

    private static long Field(string file, string name)
    {
        foreach (var line in File.ReadLines(file))
            if (line.StartsWith(name, StringComparison.Ordinal))
                return long.Parse(line[name.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        return 0;
    }
}

/// <summary>Issue 13's table: every measured row beside its goal.</summary>
static class Summary
{
    public static void Print(JsonObject json)
    {
        string N(string path, string fmt = "F2")
        {
            JsonNode? node = json;
            foreach (var part in path.Split('.')) node = node?[part];
            return node is null ? "not measured"
                : double.Parse(node.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture).ToString(fmt, System.Globalization.CultureInfo.InvariantCulture);
        }
        var rows = new List<(string Measure, string Now, string Goal)>
        {
            ("create -> running vs runc create+start", N("create.ratio", "F3") + "x", "<= 1.15x"),
            ("run /bin/true -> exit vs runc exec", $"{N("run.ratio", "F3")}x ({N("run.gardend_p50_ms")} ms)", "<= 0.1x"),
            ("destroy vs runc kill+delete", N("destroy.ratio", "F3") + "x", "<= 1.0x"),
            ($"kill -9 with {N("reattach.containers", "F0")} containers -> all attachable", N("reattach.all_attachable_ms", "F0") + " ms", "<= 1000 ms"),
            ("StreamIn / StreamOut / Run stdout", $"{N("files.stream_in_mb_per_s", "F0")} / {N("files.stream_out_mb_per_s", "F0")} / {N("files.run_cat_stdout_mb_per_s", "F0")} MB/s (medians; its first streams: {N("files.first_stream_in_mb_per_s", "F0")} / {N("files.first_stream_out_mb_per_s", "F0")} / {N("files.first_run_cat_stdout_mb_per_s", "F0")})", ">= 400 MB/s each"),
            ($"density ({N("density.containers", "F0")}): gardend RSS / per-container agent+spawner PSS / kill -9 -> all Info",
                $"{N("density.gardend_rss_mb", "F0")} MB / {N("density.agent_pss_mb_per_container")} MB / {N("density.kill9_all_info_ms", "F0")} ms",
                "<= 150 MB / <= 1.5 MB / <= 2000 ms"),
            ("10 creates in parallel vs runc's", N("parallel.ratio", "F3") + "x", ">= 0.9x"),
        };
        Console.WriteLine();
        Console.WriteLine($"| {"measure",-72} | {"now",-40} | goal |");
        Console.WriteLine($"|{new string('-', 74)}|{new string('-', 42)}|------|");
        foreach (var (m, now, goal) in rows) Console.WriteLine($"| {m,-72} | {now,-40} | {goal} |");
    }
}

/// <summary>The warm pool as gardend's log tells it: entries made ("warm pool: entry ready") and taken ("[container H]
/// taking warm pool entry").</summary>
static class Pool
{
    public static int Taken(string log, IReadOnlySet<string> handles) =>
        Lines(log).Select(l => System.Text.RegularExpressions.Regex.Match(l, @"\[container (?<h>[^\]]+)\] taking warm pool entry"))
            .Count(m => m.Success && handles.Contains(m.Groups["h"].Value));

    /// <summary>Waits (up to 60 s) until as many entries are ready as the pool holds: made and not taken or released.</summary>
    public static async Task Full(string log, int size)
    {
        for (var waited = 0; waited < 60_000; waited += 20)
        {
            // the log holds every daemon the bench started: only the one serving now counts
            var all = Lines(log);
            var lines = all.Skip(all.FindLastIndex(l => l.Contains(" serving ", StringComparison.Ordinal) && l.Contains("recovery took", StringComparison.Ordinal)) + 1).ToList();
            var ready = lines.Count(l => l.Contains("warm pool: entry ready", StringComparison.Ordinal))
                        - lines.Count(l => l.Contains("taking warm pool entry", StringComparison.Ordinal));
            if (ready >= size) return;
            await Task.Delay(20);
        }
        Console.WriteLine("warm pool: not full after 60 s; measuring anyway");
    }

    private static List<string> Lines(string log)
    {
        using var s = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var r = new StreamReader(s);
        var lines = new List<string>();
        while (r.ReadLine() is { } line) lines.Add(line);
        return lines;
    }
}
