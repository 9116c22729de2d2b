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

var dir = Directory.CreateTempSubdirectory("garden-bench-").FullName;
var socket = Path.Combine(dir, "garden.sock");
File.WriteAllText(Path.Combine(dir, "bench.conf"),
    $"garden {{ agent-binary = \"{agent}\", default-rootfs = \"{rootfs}\", cgroup-parent = \"garden-bench\" }}");
var daemon = Process.Start(new ProcessStartInfo("dotnet", [gardendDll, "--state-dir", Path.Combine(dir, "state"), "--socket", socket,
    "--config", Path.Combine(dir, "bench.conf")]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
try
{
    var client = new Garden.Protocol.Api.Garden.GardenClient(Channel(socket));
    await WaitForPing(client);

    // warm up both sides (JIT, page cache)
    for (var i = 0; i < 3; i++)
    {
        var h = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        await RunTrue(client, h);
        await client.DestroyAsync(new DestroyRequest { Handle = h });
        var id = $"bench-warm-{i}";
        await Runc.CreateStart(dir, rootfs, id);
        await Runc.Exec(id);
        await Runc.Destroy(id);
    }

    var results = new Dictionary<string, (List<double> Gardend, List<double> Runc)>
    {
        ["create"] = ([], []), ["run"] = ([], []), ["destroy"] = ([], []),
    };
    for (var i = 0; i < reps; i++)
    {
        var sw = Stopwatch.StartNew();
        var handle = (await client.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        results["create"].Gardend.Add(sw.Elapsed.TotalMilliseconds);
        sw.Restart();
        await RunTrue(client, handle);
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

    var json = new JsonObject();
    Console.WriteLine($"{"op",-8} {"gardend p50",12} {"p90",8} {"runc p50",10} {"p90",8} {"ratio",7}   ({reps} repetitions; runc: create+start / exec / kill+wait+delete)");
    foreach (var (op, (g, r)) in results)
    {
        double P(List<double> xs, double q) { var s = xs.Order().ToList(); return s[(int)Math.Min(s.Count - 1, Math.Floor(q * s.Count))]; }
        var ratio = P(g, 0.5) / P(r, 0.5);
        Console.WriteLine($"{op,-8} {P(g, 0.5),12:F2} {P(g, 0.9),8:F2} {P(r, 0.5),10:F2} {P(r, 0.9),8:F2} {ratio,7:F3}");
        json[op] = new JsonObject
        {
            ["gardend_p50_ms"] = Math.Round(P(g, 0.5), 3), ["gardend_p90_ms"] = Math.Round(P(g, 0.9), 3),
            ["runc_p50_ms"] = Math.Round(P(r, 0.5), 3), ["runc_p90_ms"] = Math.Round(P(r, 0.9), 3),
            ["ratio"] = Math.Round(ratio, 3),
        };
    }
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(resultsFile))!);
    File.WriteAllText(resultsFile, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    Console.WriteLine($"written {resultsFile}");
}
finally
{
    daemon.Kill();
    daemon.WaitForExit();
    Directory.Delete(dir, true);
}

static GrpcChannel Channel(string socket) => GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
{
    HttpHandler = new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), ct);
            return new NetworkStream(s, ownsSocket: true);
        },
    },
});

static async Task WaitForPing(Garden.Protocol.Api.Garden.GardenClient client)
{
    for (var i = 0; i < 300; i++)
    {
        try { await client.PingAsync(new PingRequest()); return; }
        catch (RpcException) { await Task.Delay(100); }
    }
    throw new TimeoutException("gardend did not answer");
}

static async Task RunTrue(Garden.Protocol.Api.Garden.GardenClient client, string handle)
{
    using var call = client.Run();
    await call.RequestStream.WriteAsync(new RunRequest { Handle = handle, Spec = new ProcessSpec { Path = "/bin/true" } });
    await call.RequestStream.CompleteAsync();
    while (await call.ResponseStream.MoveNext(default))
        if (call.ResponseStream.Current.KindCase == ProcessEvent.KindOneofCase.Exited)
        {
            if (call.ResponseStream.Current.Exited.ExitCode != 0) throw new InvalidOperationException("/bin/true failed");
            return;
        }
    throw new InvalidOperationException("no exit");
}

static class Runc
{
    // The same rootfs, read-only, with a long sleep as init: the plainest container runc can run.
    public static async Task CreateStart(string dir, string rootfs, string id)
    {
        var bundle = Path.Combine(dir, id);
        Directory.CreateDirectory(bundle);
        File.WriteAllText(Path.Combine(bundle, "config.json"), Config(rootfs, id));
        await Run("runc", "create", "--bundle", bundle, id);
        await Run("runc", "start", id);
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
