// RunAB N WARM SOCKET...: gardends (of different builds) measured in turn, rep by rep (the order rotates each rep), so all
// see the same load: each rep is Create, Run /bin/true (the container's first Run: timed from the call to Started and to the
// exit), a second Run right after (timed), Destroy. WARM unmeasured reps on each first. Prints p10/p25/p50 per build.
using System.Diagnostics;
using System.Net.Sockets;
using Garden.Protocol.Api;
using Grpc.Net.Client;

int n = int.Parse(args[0]), warm = int.Parse(args[1]);
var socks = args[2..];
int m = socks.Length;
var clients = socks.Select(s => new Garden.Protocol.Api.Garden.GardenClient(Channel(s))).ToArray();
var first = socks.Select(_ => new List<double>()).ToArray();
var firstStarted = socks.Select(_ => new List<double>()).ToArray();
var second = socks.Select(_ => new List<double>()).ToArray();
for (int i = 0; i < warm + n; i++)
{
    foreach (var k in Enumerable.Range(0, m).Select(j => (j + i) % m).ToArray() is var order && i % 2 == 1 ? order.Reverse() : order)
    {
        var c = clients[k];
        var h = (await c.CreateAsync(new CreateRequest { Spec = new ContainerSpec() })).Handle;
        var sw = Stopwatch.StartNew();
        var st = await RunTrue(c, h, sw);
        var t1 = sw.Elapsed.TotalMilliseconds;
        sw.Restart();
        await RunTrue(c, h, sw);
        var t2 = sw.Elapsed.TotalMilliseconds;
        await c.DestroyAsync(new DestroyRequest { Handle = h });
        if (i < warm) continue;
        first[k].Add(t1); firstStarted[k].Add(st); second[k].Add(t2);
    }
}
for (int k = 0; k < m; k++)
    Console.WriteLine($"{socks[k]}: first Run p10/p25/p50 {Q(first[k])}  its Started {Q(firstStarted[k])}  second Run {Q(second[k])} (n={first[k].Count})");

static string Q(List<double> xs) { var s = xs.Order().ToList(); double P(double q) => s[(int)Math.Min(s.Count - 1, Math.Floor(q * s.Count))]; return $"{P(0.1):F2}/{P(0.25):F2}/{P(0.5):F2}"; }

static async Task<double> RunTrue(Garden.Protocol.Api.Garden.GardenClient client, string handle, Stopwatch clock)
{
    double started = -1;
    using var call = client.Run();
    await call.RequestStream.WriteAsync(new RunRequest { Handle = handle, Spec = new ProcessSpec { Path = "/bin/true" } });
    await call.RequestStream.CompleteAsync();
    while (await call.ResponseStream.MoveNext(default))
    {
        if (call.ResponseStream.Current.KindCase == ProcessEvent.KindOneofCase.Started) started = clock.Elapsed.TotalMilliseconds;
        if (call.ResponseStream.Current.KindCase == ProcessEvent.KindOneofCase.Exited) return started;
    }
    throw new InvalidOperationException("no exit");
}

static GrpcChannel Channel(string socket) => Garden.Protocol.Client.GrpcGardenClient.UnixSocketChannel(socket);
