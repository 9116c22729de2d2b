using System.Net.Http.Headers;
using System.Text;
using Garden.Host.GardenHttp;
using ErrorKind = Garden.Actors.ErrorKind;
using GardenException = Garden.Actors.GardenException;
using Api = Garden.Protocol.Api;

namespace Garden.GardenHttp.Tests;

/// <summary>Every plain route over a real connection: the request bytes Garden's Go client sends (from
/// Golden/go-client-requests.golden, or built the same way), the protobuf request the backend gets, and the answer on
/// the wire — a JSON body (never empty), Content-Length, Connection: close.</summary>
public sealed class PlainRouteTests
{
    /// <summary>A request as Go's http.Client (DisableKeepAlives) writes it.</summary>
    public static string GoRequest(string method, string target, string? json = null, string contentType = "application/json")
    {
        var b = new StringBuilder($"{method} {target} HTTP/1.1\r\nHost: api\r\nUser-Agent: Go-http-client/1.1\r\n");
        if (json is not null) b.Append($"Content-Length: {Encoding.UTF8.GetByteCount(json + "\n")}\r\nContent-Type: {contentType}\r\n");
        b.Append("Accept-Encoding: gzip\r\nConnection: close\r\n\r\n");
        if (json is not null) b.Append(json).Append('\n');
        return b.ToString();
    }

    /// <summary>A 200 with a JSON body that is <paramref name="json"/> and a newline, framed as a plain answer must be.</summary>
    private static void AssertJson(RawResponse r, string json, int status = 200)
    {
        Assert.Equal(status, r.Status);
        Assert.Equal("application/json", r.Headers["Content-Type"]);
        Assert.Equal("close", r.Headers["Connection"]);
        Assert.Equal(Encoding.UTF8.GetByteCount(r.Body).ToString(), r.Headers["Content-Length"]);
        Assert.Equal(json + "\n", r.Body);
    }

    [Fact]
    public async Task Ping_as_Go_sends_it_answers_an_empty_object_with_length_and_close()
    {
        await using var t = TestServer.Tcp();
        var r = await t.SendAsync(Golden.Request("GET /ping HTTP/1.1"));
        Assert.Equal("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\nConnection: close", r.HeadWithoutDate);
        Assert.Matches(@"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n", r.Head + "\r\n");
        Assert.Equal("{}\n", r.Body);
        t.Backend.Single<Api.PingRequest>("Ping");
    }

    [Fact]
    public async Task Capacity_reports_the_disk_as_schedulable_too()
    {
        await using var t = TestServer.Tcp();
        AssertJson(await t.SendAsync(GoRequest("GET", "/capacity")), Golden.Json("capacity"));
    }

    [Fact]
    public async Task Create_passes_the_whole_spec_and_answers_the_handle()
    {
        await using var t = TestServer.Tcp();
        AssertJson(await t.SendAsync(GoRequest("POST", "/containers", Golden.Json("create.full"))), Golden.Json("create.response"));
        var expected = GardenConvert.ToCreate(System.Text.Json.JsonSerializer.Deserialize(Golden.Json("create.full"), GardenJsonContext.Wire.ContainerSpec)!);
        Assert.Equal(expected, t.Backend.Single<Api.CreateRequest>("Create"));
        AssertJson(await t.SendAsync(GoRequest("POST", "/containers", Golden.Json("create.minimal"))), "{\"Handle\":\"generated\"}");
    }

    [Fact]
    public async Task Create_with_an_unlimited_memory_limit_is_a_400_naming_the_field_and_reaches_no_backend()
    {
        await using var t = TestServer.Tcp();
        var r = await t.SendAsync(GoRequest("POST", "/containers", Golden.Json("create.unlimited-memory")));
        Assert.Equal(400, r.Status);
        Assert.Contains("\"Message\":\"limits.memory_limits.limit_in_bytes: 18446744073709551615", r.Body);
        Assert.Empty(t.Backend.Calls);
    }

    [Fact]
    public async Task List_turns_every_query_pair_into_a_property_filter_form_decoded()
    {
        await using var t = TestServer.Tcp(backend: new FakeBackend { Handles = ["a", "b"] });
        AssertJson(await t.SendAsync(Golden.Request("GET /containers?team=a+b&x%2Cy=1%2B1 HTTP/1.1")), Golden.Json("list.response"));
        Assert.Equal(new Dictionary<string, string> { ["team"] = "a b", ["x,y"] = "1+1" }, t.Backend.Single<Api.ListRequest>("List").Properties);
        t.Backend.Handles = [];
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers")), "{\"Handles\":[]}");
    }

    [Fact]
    public async Task BulkInfo_and_BulkMetrics_answer_per_handle_and_do_not_fail_for_an_unknown_one()
    {
        await using var t = TestServer.Tcp(backend: new FakeBackend { Handles = ["h2"] });
        var r = await t.SendAsync(Golden.Request("GET /containers/bulk_info?handles=h+1%2Ch2 HTTP/1.1"));
        Assert.Equal(200, r.Status);
        Assert.Equal(["h 1", "h2"], t.Backend.Single<Api.BulkInfoRequest>("BulkInfo").Handles);
        Assert.Contains("\"h 1\":{\"Info\":{\"State\":\"\",", r.Body);
        Assert.Contains("\"Err\":{\"Type\":\"\",\"Message\":\"unknown handle: h 1\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}}", r.Body);
        Assert.Contains("\"h2\":{\"Info\":{\"State\":\"active\",", r.Body);
        var m = await t.SendAsync(GoRequest("GET", "/containers/bulk_metrics?handles=h2%2Cnope"));
        Assert.Equal(200, m.Status);
        Assert.Contains("\"h2\":{\"Metrics\":{\"MemoryStat\":", m.Body);
        Assert.Contains("\"Message\":\"unknown handle: nope\"", m.Body);
    }

    [Fact]
    public async Task Bulk_calls_without_handles_answer_an_empty_object_without_asking()
    {
        await using var t = TestServer.Tcp();
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/bulk_info?handles=")), "{}");
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/bulk_metrics")), "{}");
        Assert.Empty(t.Backend.Calls);
    }

    [Fact]
    public async Task Info_Metrics_and_Properties_answer_Garden_shapes()
    {
        await using var t = TestServer.Tcp();
        t.Backend.Info = new Api.ContainerInfo { State = "active", HostIp = "10.254.0.1", ContainerIp = "10.254.0.2", ContainerPath = "/var/lib/garden-actors/depot/h1" };
        t.Backend.Info.Events.Add("out of memory");
        t.Backend.Info.ProcessIds.Add("p1");
        t.Backend.Info.Properties["k"] = "v";
        t.Backend.Info.MappedPorts.Add(new Api.PortMapping { HostPort = 61001, ContainerPort = 8080 });
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/info")), Golden.Json("info"));
        Assert.Equal("h1", t.Backend.Single<Api.InfoRequest>("Info").Handle);
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/metrics")), Golden.Json("metrics.zero").Replace("\"NetworkStat\":null", "\"NetworkStat\":{\"RxBytes\":0,\"TxBytes\":0}"));
        t.Backend.Properties = new() { ["b"] = "2", ["a"] = "1" };
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/properties")), Golden.Json("properties"));
    }

    [Fact]
    public async Task Property_routes_get_set_and_remove_by_the_decoded_key()
    {
        await using var t = TestServer.Tcp();
        t.Backend.Properties = new() { ["k y"] = "v 1" };
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/properties/k%20y")), Golden.Json("property"));
        AssertJson(await t.SendAsync(GoRequest("PUT", "/containers/h1/properties/k%20y", Golden.Json("setProperty"))), "{}");
        Assert.Equal(("h1", "k y", "v 1"), (t.Backend.Single<Api.SetPropertyRequest>("SetProperty").Handle, t.Backend.Single<Api.SetPropertyRequest>("SetProperty").Key,
            t.Backend.Single<Api.SetPropertyRequest>("SetProperty").Value));
        AssertJson(await t.SendAsync(GoRequest("DELETE", "/containers/h1/properties/k%20y")), "{}");
        Assert.Equal("k y", t.Backend.Single<Api.RemovePropertyRequest>("RemoveProperty").Key);
        // a missing property is a generic error (not "unknown handle"), with the backend's words
        var missing = await t.SendAsync(GoRequest("GET", "/containers/h1/properties/nope"));
        Assert.Equal(404, missing.Status);
        Assert.Equal("{\"Type\":\"\",\"Message\":\"container h1 has no property \\\"nope\\\"\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}\n", missing.Body);
    }

    [Fact]
    public async Task Destroy_Stop_and_SetGraceTime_as_Go_sends_them()
    {
        await using var t = TestServer.Tcp();
        AssertJson(await t.SendAsync(Golden.Request("DELETE /containers/caf%C3%A9%20h HTTP/1.1")), "{}");
        Assert.Equal("café h", t.Backend.Single<Api.DestroyRequest>("Destroy").Handle);
        AssertJson(await t.SendAsync(Golden.Request("PUT /containers/h1/stop HTTP/1.1")), "{}");
        Assert.Equal(("h1", true), (t.Backend.Single<Api.StopRequest>("Stop").Handle, t.Backend.Single<Api.StopRequest>("Stop").Kill));
        AssertJson(await t.SendAsync(Golden.Request("PUT /containers/h1/grace_time HTTP/1.1")), "{}");
        Assert.Equal(500UL, t.Backend.Single<Api.SetGraceTimeRequest>("SetGraceTime").GraceTimeMs);
    }

    [Fact]
    public async Task Current_limits_routes_answer_each_limit_struct()
    {
        await using var t = TestServer.Tcp();
        t.Backend.Limits = new Api.LimitsResponse { Limits = new Api.Limits { CpuWeight = 50, MemoryBytes = 134217728 } };
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/limits/cpu")), Golden.Json("limits.cpu.shares"));
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/limits/memory")), Golden.Json("limits.memory"));
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/limits/disk")), Golden.Json("limits.disk.empty"));
        AssertJson(await t.SendAsync(GoRequest("GET", "/containers/h1/limits/bandwidth")), Golden.Json("limits.bandwidth.empty"));
        Assert.All(t.Backend.Requests<Api.CurrentLimitsRequest>("CurrentLimits"), r => Assert.Equal("h1", r.Handle));
    }

    [Fact]
    public async Task NetIn_NetOut_and_BulkNetOut_pass_their_rules()
    {
        await using var t = TestServer.Tcp();
        AssertJson(await t.SendAsync(GoRequest("POST", "/containers/h1/net/in", Golden.Json("netin.request"))), Golden.Json("netin.response"));
        var netIn = t.Backend.Single<Api.NetInRequest>("NetIn");
        Assert.Equal(("h1", 0u, 8080u), (netIn.Handle, netIn.HostPort, netIn.ContainerPort));
        AssertJson(await t.SendAsync(GoRequest("POST", "/containers/h1/net/out", Golden.Json("netout.icmp"))), "{}");
        var rule = t.Backend.Single<Api.NetOutRequest>("NetOut").Rule;
        Assert.Equal((Api.NetOutRule.Types.Protocol.Icmp, 8u, 0), (rule.Protocol, rule.Icmp.Type, rule.Icmp.Code));
        AssertJson(await t.SendAsync(GoRequest("POST", "/containers/h1/net/out/bulk", Golden.Json("bulknetout.two"))), "{}");
        Assert.Equal(2, t.Backend.Single<Api.BulkNetOutRequest>("BulkNetOut").Rules.Count);
        AssertJson(await t.SendAsync(GoRequest("POST", "/containers/h2/net/out/bulk", Golden.Json("bulknetout.nil"))), "{}");
        Assert.Contains(t.Backend.Requests<Api.BulkNetOutRequest>("BulkNetOut"), r => r.Handle == "h2" && r.Rules.Count == 0);
    }

    [Fact]
    public async Task StreamIn_takes_Go_s_chunked_tar_and_the_form_decoded_destination()
    {
        await using var t = TestServer.Tcp();
        AssertJson(await t.SendAsync(Golden.Request("PUT /containers/h1/files?destination=%2Ftmp%2Fx+y&user=alice HTTP/1.1")), "{}");
        var r = t.Backend.Single<Api.StreamInRequest>("StreamIn");
        Assert.Equal(("h1", "/tmp/x y", "alice"), (r.Handle, r.Path, r.User));
        Assert.Equal("tar-bytes", Encoding.ASCII.GetString(Assert.Single(t.Backend.StreamedIn)));
    }

    [Fact]
    public async Task StreamIn_that_fails_early_still_reads_the_upload_and_answers_the_error()
    {
        await using var t = TestServer.Tcp(backend: new FakeBackend().Fail("StreamIn", new GardenException(ErrorKind.InvalidArgument, "error streaming in: no user bob")));
        var body = new byte[3 * 1024 * 1024];
        using var http = t.HttpClient();
        var response = await http.PutAsync("containers/h1/files?destination=%2F&user=bob", new StreamContent(new MemoryStream(body)));
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("error streaming in: no user bob", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task StreamOut_sends_the_tar_chunked_and_a_failure_before_the_first_byte_as_an_error()
    {
        await using var t = TestServer.Tcp();
        var tar = Enumerable.Range(0, 300_000).Select(i => (byte)i).ToArray();
        t.Backend.StreamOut = _ => new MemoryStream(tar);
        using var http = t.HttpClient();
        var ok = await http.GetAsync("containers/h1/files?source=%2Fhome%2Falice&user=alice");
        Assert.Equal(200, (int)ok.StatusCode);
        Assert.Equal("application/x-tar", ok.Content.Headers.ContentType!.MediaType);
        Assert.True(ok.Headers.TransferEncodingChunked);
        Assert.Equal(tar, await ok.Content.ReadAsByteArrayAsync());
        var r = t.Backend.Single<Api.StreamOutRequest>("StreamOut");
        Assert.Equal(("h1", "/home/alice", "alice"), (r.Handle, r.Path, r.User));

        t.Backend.StreamOut = _ => throw GardenException.UnknownHandle("h1");
        var missing = await http.GetAsync("containers/h1/files?source=x");
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Contains("\"Type\":\"ContainerNotFoundError\"", await missing.Content.ReadAsStringAsync());

        t.Backend.StreamOut = _ => new FailingStream(fail: false);
        var permission = await http.GetAsync("containers/h1/files?source=x");
        Assert.Equal(400, (int)permission.StatusCode);   // failed on the first read: nothing was sent yet
        Assert.Contains("Permission denied", await permission.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task StreamOut_that_breaks_mid_stream_ends_without_the_last_chunk_so_the_client_sees_it()
    {
        await using var t = TestServer.Tcp();
        t.Backend.StreamOut = _ => new FailingStream(fail: true);
        using var http = t.HttpClient();
        var response = await http.GetAsync("containers/h1/files?source=x", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsByteArrayAsync());   // cut, not a short valid tar
        // and on the wire: the first chunk, then the end of the connection without "0\r\n\r\n"
        var raw = await t.SendAsync(GoRequest("GET", "/containers/h1/files?source=x"));
        Assert.EndsWith("1000\r\n" + new string('x', 4096) + "\r\n", raw.Body);
    }

    /// <summary>4 KiB of 'x' and then a failure (or the failure at once).</summary>
    private sealed class FailingStream(bool fail) : MemoryStream
    {
        private int _reads;
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            if (!fail || _reads++ > 0) throw new GardenException(ErrorKind.InvalidArgument, "stream-out: Permission denied");
            buffer.Span[..4096].Fill((byte)'x');
            return ValueTask.FromResult(4096);
        }
    }

    [Theory]
    [InlineData("Destroy", "DELETE", "/containers/nope", 404, "{\"Type\":\"ContainerNotFoundError\",\"Message\":\"unknown handle: nope\",\"Handle\":\"nope\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    [InlineData("Ping", "GET", "/ping", 503, "{\"Type\":\"ServiceUnavailableError\",\"Message\":\"gardend is recovering\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    [InlineData("Create", "POST", "/containers", 409, "{\"Type\":\"\",\"Message\":\"Handle 'h1' already in use\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    [InlineData("Stop", "PUT", "/containers/h1/stop", 409, "{\"Type\":\"\",\"Message\":\"container h1 is being destroyed\",\"Handle\":\"\",\"ProcessID\":\"\",\"Binary\":\"\"}")]
    public async Task Backend_errors_are_Garden_errors_with_their_status(string method, string verb, string path, int status, string body)
    {
        Exception e = method switch
        {
            "Destroy" => GardenException.UnknownHandle("nope"),
            "Ping" => new GardenException(ErrorKind.Unavailable, "gardend is recovering"),
            "Create" => new GardenException(ErrorKind.AlreadyExists, "Handle 'h1' already in use"),
            _ => new GardenException(ErrorKind.FailedPrecondition, "container h1 is being destroyed"),
        };
        await using var t = TestServer.Tcp(backend: new FakeBackend().Fail(method, e));
        var json = verb is "POST" ? Golden.Json("create.minimal") : verb is "PUT" ? Golden.Json("stop.kill") : null;
        AssertJson(await t.SendAsync(GoRequest(verb, path, json)), body, status);
    }

    [Fact]
    public async Task The_API_works_with_an_ordinary_HTTP_client_over_TCP_and_over_a_unix_socket()
    {
        foreach (var t in new[] { TestServer.Tcp(), TestServer.Unix() })
        {
            await using var _ = t;
            using var http = t.HttpClient();
            Assert.Equal("{}\n", await http.GetStringAsync("ping"));
            var create = new StringContent(Golden.Json("create.weight"), Encoding.UTF8);
            create.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            var created = await http.PostAsync("containers", create);
            Assert.Equal("{\"Handle\":\"w\"}\n", await created.Content.ReadAsStringAsync());
            Assert.Equal(512UL, t.Backend.Single<Api.CreateRequest>("Create").Spec.Limits.CpuWeight);
            var notFound = await http.GetAsync("nope");
            Assert.Equal(404, (int)notFound.StatusCode);
            Assert.StartsWith("{\"Type\":\"\",\"Message\":\"no such route: GET /nope\"", await notFound.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task Requests_naming_a_container_pause_its_grace_time_while_they_run_and_others_do_not()
    {
        await using var t = TestServer.Tcp();
        await t.SendAsync(GoRequest("GET", "/containers/h1/info"));
        await t.SendAsync(GoRequest("GET", "/containers"));
        await t.SendAsync(GoRequest("GET", "/ping"));
        await t.SendAsync(GoRequest("GET", "/containers/bulk_info?handles=h2"));
        await TestServer.Eventually(() => t.Backend.HoldLog.Count == 2, "the hold of Info released");
        Assert.Equal(["+h1", "-h1"], t.Backend.HoldLog);
    }
}
