using System.Diagnostics;
using System.Formats.Tar;
using System.Net.Sockets;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Garden.Protocol.Api;
using Garden.Testing;
using Google.Protobuf;
using Grpc.Net.Client;

// Issue 13's stream rows, hop by hop, with a daemon of its own (Gardend: own state dir, network prefix, cgroup parent), so
// it can run beside `make bench`. The same 200 x 1 MiB tree as the bench, through:
//   tool   - the agent's file tool alone on the host, fed by / feeding a pipe (the extractor's and archiver's floor)
//   agent  - the agent alone in a sandbox (AgentSandbox), over its socket (no gardend, no runc)
//   gardend- the whole path: gRPC over gardend's unix socket -> API core -> actors -> agent -> tool
// Usage: Garden.StreamProbe [REPS] [hops: tool,agent,gardend]   (GARDEN_AGENT_BIN / a gardend via STREAMPROBE_GARDEND_DLL)
var reps = args.Length > 0 ? int.Parse(args[0]) : 3;
var hops = (args.Length > 1 ? args[1] : "tool,agent,gardend").Split(',');
// STREAMPROBE_ROWS=in,out,cat (default all): which transfers each gardend rep makes (in: StreamIn; out and cat need in)
var rows = (Environment.GetEnvironmentVariable("STREAMPROBE_ROWS") ?? "in,out,cat").Split(',');
const int files = 200, fileBytes = 1 << 20;
const double mb = files * (double)fileBytes / (1 << 20);
var agentBin = TestPaths.AgentBinary;
var work = TestPaths.NewTempDir("streamprobe");
var tarPath = Path.Combine(work, "tree.tar");
using (var fs = File.Create(tarPath))
using (var w = new TarWriter(fs, TarEntryFormat.Pax))
{
    var data = new byte[fileBytes];
    Random.Shared.NextBytes(data);
    for (var i = 0; i < files; i++)
        w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"tree/f{i:D3}") { DataStream = new MemoryStream(data) });
}
var tar = File.ReadAllBytes(tarPath);
var results = new Dictionary<string, List<double>>();
void Add(string k, double v) { (results.TryGetValue(k, out var l) ? l : results[k] = []).Add(v); Console.WriteLine($"  {k}: {v:F0} MB/s {Cpu()}"); }
// CPU seconds spent since the last call by the client (this process) and by gardend: on a shared machine, the cost per
// MB is steadier than the rate
int daemonPid = 0;
string serverName = "";
double lastClient = 0, lastDaemon = 0, lastContainer = 0;
string? containerCpu = null;
string Cpu()
{
    double client = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds, daemon = daemonPid == 0 ? 0 : CpuOf(daemonPid);
    double container = containerCpu != null && File.Exists(containerCpu) ? long.Parse(File.ReadAllText(containerCpu).Trim()) / 1e9 : 0;
    var text = daemonPid == 0 ? "" : $"(cpu: client {client - lastClient:F2}s, {serverName} {daemon - lastDaemon:F2}s" +
        (containerCpu != null ? $", container {container - lastContainer:F2}s)" : ")");
    (lastClient, lastDaemon, lastContainer) = (client, daemon, container);
    return text;
}
static double CpuOf(int pid)
{
    var f = File.ReadAllText($"/proc/{pid}/stat");
    var parts = f[(f.LastIndexOf(')') + 2)..].Split(' ');
    return (long.Parse(parts[11]) + long.Parse(parts[12])) / 100.0; // utime + stime, in clock ticks
}
Console.WriteLine($"agent {agentBin}, {reps} reps");
try
{
    if (hops.Contains("tool"))
    {
        for (var r = 0; r < reps; r++)
        {
            var dest = Path.Combine(work, "toolout");
            var sw = Stopwatch.StartNew();
            Sh($"cat {tarPath} | {agentBin} stream-in {dest}");
            Add("tool stream-in", mb / sw.Elapsed.TotalSeconds);
            sw.Restart();
            Sh($"{agentBin} stream-out {dest}/tree | cat > /dev/null");
            Add("tool stream-out", mb / sw.Elapsed.TotalSeconds);
            Directory.Delete(dest, true);
        }
    }
    if (hops.Contains("agent"))
    {
        using var sandbox = new AgentSandbox(agentBin, TestPaths.DefaultRootfs);
        var client = sandbox.Client;
        (daemonPid, serverName) = (sandbox.AgentHostPid, "agent");
        for (var r = 0; r < reps; r++)
        {
            Cpu();
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            var sw = Stopwatch.StartNew();
            var spec = AgentRuns.Cmd($"in-{r}", "/.garden/agent", "stream-in", "/bench");
            spec.KeepStdin = true;
            await using (var s = await client.SpawnAttachedAsync(spec, cts.Token))
            {
                var feed = Task.Run(async () =>
                {
                    for (int off = 0; off < tar.Length; off += 256 * 1024)
                        await s.WriteStdinAsync(tar.AsMemory(off, Math.Min(256 * 1024, tar.Length - off)), cts.Token);
                    await s.CloseStdinAsync(cts.Token);
                });
                var res = await s.CollectAsync(cts.Token);
                await feed;
                if (res.ExitCode != 0) throw new InvalidOperationException($"agent stream-in: {res}");
            }
            Add("agent stream-in", mb / sw.Elapsed.TotalSeconds);
            sw.Restart();
            long got = 0;
            await using (var s = await client.SpawnAttachedAsync(AgentRuns.Cmd($"out-{r}", "/.garden/agent", "stream-out", "/bench/tree"), cts.Token))
                while (await s.ReadAsync(cts.Token) is { } ev)
                {
                    if (ev.KindCase == AgentEvent.KindOneofCase.Output && ev.Output.Stream == StreamKind.Stdout) got += ev.Output.Data.Length;
                    if (ev.KindCase == AgentEvent.KindOneofCase.Exited && ev.Exited.ExitCode != 0) throw new InvalidOperationException("stream-out failed");
                }
            Add("agent stream-out", got / (double)(1 << 20) / sw.Elapsed.TotalSeconds);
            if (r == 0) await client.RunAsync(AgentRuns.Cmd("mkbig", "/bin/sh", "-c", "cat /bench/tree/* > /big"), timeoutSeconds: 120);
            Cpu();
            sw.Restart();
            got = 0;
            await using (var s = await client.SpawnAttachedAsync(AgentRuns.Cmd($"cat-{r}", "/bin/cat", "/big"), cts.Token))
                while (await s.ReadAsync(cts.Token) is { } ev)
                    if (ev.KindCase == AgentEvent.KindOneofCase.Output && ev.Output.Stream == StreamKind.Stdout) got += ev.Output.Data.Length;
            Add("agent cat stdout", got / (double)(1 << 20) / sw.Elapsed.TotalSeconds);
            await client.RunAsync(AgentRuns.Cmd($"rm-{r}", "/bin/rm", "-rf", "/bench"));
        }
    }
    if (hops.Contains("gardend"))
    {
        await using var gardend = new Gardend();
        if (Environment.GetEnvironmentVariable("STREAMPROBE_GARDEND_DLL") is { } dll) gardend.DllPath = dll;
        gardend.AgentPath = agentBin;
        gardend.Configure("");
        await gardend.StartAsync();
        var client = new Garden.Protocol.Api.Garden.GardenClient(Garden.Protocol.Client.GrpcGardenClient.UnixSocketChannel(gardend.Socket));
        var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        // the container's own CPU (its agent and the file tool, cgroup v1 cpuacct), beside gardend's
        containerCpu = Path.Combine("/sys/fs/cgroup/cpuacct", gardend.CgroupParent, h, "cpuacct.usage");
        try
        {
            (daemonPid, serverName) = (gardend.Pid, "gardend");
            for (var r = 0; r < reps; r++)
            {
                Cpu();
                var sw = Stopwatch.StartNew();
                using (var call = client.StreamIn())
                {
                    await call.RequestStream.WriteAsync(new StreamInRequest { Handle = h, Path = "/bench" });
                    for (int off = 0; off < tar.Length; off += 256 * 1024)
                        await call.RequestStream.WriteAsync(new StreamInRequest { Data = UnsafeByteOperations.UnsafeWrap(tar.AsMemory(off, Math.Min(256 * 1024, tar.Length - off))) });
                    await call.RequestStream.CompleteAsync();
                    await call.ResponseAsync;
                }
                Add("gardend stream-in", mb / sw.Elapsed.TotalSeconds);
                if (!rows.Contains("out") && !rows.Contains("cat"))
                {
                    await Run(client, h, "rm", "-rf", "/bench");
                    continue;
                }
                sw.Restart();
                long outBytes = 0;
                using (var call = client.StreamOut(new StreamOutRequest { Handle = h, Path = "/bench/tree" }))
                    while (await call.ResponseStream.MoveNext(default)) outBytes += call.ResponseStream.Current.Data.Length;
                Add("gardend stream-out", outBytes / (double)(1 << 20) / sw.Elapsed.TotalSeconds);
                if (r == 0) await Run(client, h, "sh", "-c", "cat /bench/tree/* > /big");
                Cpu();
                sw.Restart();
                var catBytes = await Run(client, h, "cat", "/big");
                Add("gardend cat stdout", catBytes / (double)(1 << 20) / sw.Elapsed.TotalSeconds);
                await Run(client, h, "rm", "-rf", "/bench");
            }
        }
        finally
        {
            await client.DestroyAsync(new DestroyRequest { Handle = h });
        }
    }
}
finally
{
    Directory.Delete(work, true);
}
Console.WriteLine("summary (min / median / max MB/s):");
foreach (var (k, v) in results)
{
    v.Sort();
    Console.WriteLine($"{k,-20} {v[0],6:F0} {v[v.Count / 2],6:F0} {v[^1],6:F0}");
}

static void Sh(string cmd)
{
    using var p = Process.Start("bash", ["-c", "set -o pipefail; " + cmd])!;
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException($"{cmd}: exit {p.ExitCode}");
}

static async Task<long> Run(Garden.Protocol.Api.Garden.GardenClient client, string handle, string path, params string[] args)
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
