using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Akka.Configuration;
using Garden.Host;
using Garden.Host.GardenHttp;
using Microsoft.Extensions.Logging.Abstractions;

namespace Garden.GardenHttp.Tests;

/// <summary>The debug endpoint (garden.garden-http.debug-address): gdn's GET /debug/vars, as GATS's "Debug" spec and
/// expvar readers parse it, with gardend's own numbers.</summary>
public sealed class DebugVarsTests
{
    private static Config Conf(string text) => ConfigurationFactory.ParseString(text);

    [Fact]
    public void Off_by_default_loopback_only_unless_allowed_and_bad_addresses_name_the_setting()
    {
        Assert.Null(GardenDebugDoor.FromConfig(Conf("garden.garden-http.debug-address = \"\"")));
        Assert.Equal("127.0.0.1:17013", GardenDebugDoor.FromConfig(Conf("garden.garden-http.debug-address = \"127.0.0.1:17013\""))!.EndPoint.ToString());
        var open = Assert.Throws<StartupFailure>(() => GardenDebugDoor.FromConfig(Conf("garden.garden-http.debug-address = \"0.0.0.0:17013\"")));
        Assert.Contains("garden.garden-http.debug-address", open.Message);
        Assert.Contains("not a loopback", open.Message);
        Assert.NotNull(GardenDebugDoor.FromConfig(Conf("garden.garden-http {\n debug-address = \"0.0.0.0:17013\"\n allow-non-loopback = on\n}")));
        foreach (var bad in new[] { "17013", "/run/debug.sock", "debug.example:17013" })
        {
            var e = Assert.Throws<StartupFailure>(() => GardenDebugDoor.FromConfig(Conf($"garden.garden-http.debug-address = \"{bad}\"")));
            Assert.Contains("garden.garden-http.debug-address", e.Message);
        }
    }

    [Fact]
    public async Task Get_debug_vars_answers_expvar_json_with_this_process_s_live_memory()
    {
        await using var server = new DebugVarsServer(NullLogger.Instance);
        server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        using var http = new HttpClient { BaseAddress = new Uri($"http://{server.LocalEndPoint}") };

        var before = GC.GetTotalAllocatedBytes(false);
        var held = new byte[8 * 1024 * 1024];   // 8 MiB live while we ask: Alloc must count it
        held[^1] = 1;
        var answer = await http.GetAsync("/debug/vars");
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.StartsWith("application/json", answer.Content.Headers.ContentType!.ToString());
        using var doc = JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
        var mem = doc.RootElement.GetProperty("memstats");
        Assert.True(mem.GetProperty("Alloc").GetUInt64() >= (ulong)held.Length, mem.ToString());
        Assert.True(mem.GetProperty("TotalAlloc").GetUInt64() >= (ulong)before + (ulong)held.Length, mem.ToString());
        Assert.True(mem.GetProperty("Sys").GetUInt64() > 0);
        Assert.True(doc.RootElement.GetProperty("cmdline").GetArrayLength() > 0);
        GC.KeepAlive(held);

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/debug/pprof")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.PostAsync("/debug/vars", new StringContent("x"))).StatusCode);
    }

    [Fact]
    public async Task A_client_that_never_finishes_its_request_is_dropped_and_the_server_still_answers()
    {
        await using var server = new DebugVarsServer(NullLogger.Instance);
        server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        using var slow = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await slow.ConnectAsync(server.LocalEndPoint!);
        await slow.SendAsync("GET /debug/vars HTTP/1.1\r\n"u8.ToArray(), SocketFlags.None);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{server.LocalEndPoint}") };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/debug/vars")).StatusCode);
        var buf = new byte[16];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        Assert.Equal(0, await slow.ReceiveAsync(buf, SocketFlags.None, cts.Token));   // closed after 5 s without an answer
    }
}
