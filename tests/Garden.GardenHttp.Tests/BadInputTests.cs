using System.Diagnostics;
using System.Text;
using Garden.Host.GardenHttp;
using Api = Garden.Protocol.Api;

namespace Garden.GardenHttp.Tests;

/// <summary>What a broken or hostile client sends: every refusal is Garden's JSON error (a Go client can read it),
/// names what was wrong, and leaves the server serving; nothing a client withholds holds the server for long.</summary>
public sealed class BadInputTests
{
    // Short enough that the timeout tests are quick, long enough that a loaded test machine (the whole suite runs in
    // parallel on two cores) does not stall a request that was sent whole past one.
    private static readonly GardenHttpOptions Quick = new()
    {
        RequestHeadTimeout = TimeSpan.FromMilliseconds(1500),
        JsonBodyTimeout = TimeSpan.FromMilliseconds(1500),
        StreamBodyIdleTimeout = TimeSpan.FromMilliseconds(1500),
        LingerTimeout = TimeSpan.FromMilliseconds(1500),
        MaxRequestHeadBytes = 4096,
        MaxJsonBodyBytes = 64 * 1024,
    };

    /// <summary>An error answer: JSON of garden.Error, length-delimited.</summary>
    private static string AssertError(RawResponse r, int status)
    {
        Assert.Equal(status, r.Status);
        Assert.Equal("application/json", r.Headers["Content-Type"]);
        Assert.Equal(Encoding.UTF8.GetByteCount(r.Body).ToString(), r.Headers["Content-Length"]);
        var e = System.Text.Json.JsonSerializer.Deserialize(r.Body, GardenJsonContext.Wire.GardenError)!;
        Assert.NotEmpty(e.Message);
        return e.Message;
    }

    private static async Task StillServes(TestServer t) =>
        Assert.Equal("{}\n", (await t.SendAsync(PlainRouteTests.GoRequest("GET", "/ping"))).Body);

    [Theory]
    [InlineData("{\"handle\":", "not a JSON ContainerSpec")]
    [InlineData("[1,2]", "not a JSON ContainerSpec")]
    [InlineData("{\"limits\":{\"memory_limits\":{\"limit_in_bytes\":-1}}}", "$.limits.memory_limits.limit_in_bytes")]
    [InlineData("", "missing: expected a JSON ContainerSpec")]
    public async Task A_malformed_JSON_body_is_a_400_naming_the_problem(string body, string says)
    {
        await using var t = TestServer.Tcp(Quick);
        var request = $"POST /containers HTTP/1.1\r\nHost: api\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n{body}";
        var message = AssertError(await t.SendAsync(request), 400);
        Assert.StartsWith("request body:", message);
        Assert.Contains(says, message);
        Assert.Empty(t.Backend.Calls);
        await StillServes(t);
    }

    [Theory]
    [InlineData("GET /nope HTTP/1.1\r\n\r\n", 404)]
    [InlineData("POST /ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405)]
    [InlineData("GET /containers/h%zz/info HTTP/1.1\r\n\r\n", 400)]
    [InlineData("GET /containers/%C3%28/info HTTP/1.1\r\n\r\n", 400)]
    [InlineData("GET /ping HTTP/2.0\r\n\r\n", 505)]
    [InlineData("GET /ping\r\n\r\n", 400)]
    [InlineData("GET ping HTTP/1.1\r\n\r\n", 400)]
    [InlineData("G\u0001T /ping HTTP/1.1\r\n\r\n", 400)]
    [InlineData("GET /ping HTTP/1.1\r\nHost : api\r\n\r\n", 400)]
    [InlineData("GET /ping HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400)]
    [InlineData("PUT /containers/h/files HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)]
    [InlineData("PUT /containers/h/files HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400)]
    [InlineData("PUT /containers/h/files HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400)]
    [InlineData("PUT /containers/h/files HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501)]
    [InlineData("PUT /containers/h/files HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400)]
    [InlineData("PUT /containers/h/files HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400)]
    [InlineData("GET /ping HTTP/1.1\r\nExpect: teapot\r\n\r\n", 417)]
    public async Task Malformed_or_unknown_requests_get_a_JSON_error_and_the_server_stays_up(string request, int status)
    {
        await using var t = TestServer.Tcp(Quick);
        AssertError(await t.SendAsync(request), status);
        await StillServes(t);
    }

    [Fact]
    public async Task A_body_larger_than_allowed_is_refused_at_once_from_its_declared_length()
    {
        await using var t = TestServer.Tcp(Quick);
        await using var c = await t.ConnectAsync();
        var clock = Stopwatch.StartNew();
        await c.SendAsync("POST /containers HTTP/1.1\r\nHost: api\r\nContent-Length: 1000000000\r\n\r\n{\"handle\":");
        var head = await c.ReadHeadAsync();
        Assert.StartsWith("HTTP/1.1 413 ", head);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Empty(t.Backend.Calls);
        await StillServes(t);
    }

    [Fact]
    public async Task A_chunked_body_that_grows_past_the_limit_is_refused()
    {
        await using var t = TestServer.Tcp(Quick);
        var chunk = new string(' ', 8192);
        var body = string.Concat(Enumerable.Repeat($"2000\r\n{chunk}\r\n", 20)) + "0\r\n\r\n";
        var message = AssertError(await t.SendAsync($"POST /containers HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}"), 413);
        Assert.Contains("65536", message);
    }

    [Fact]
    public async Task A_head_larger_than_allowed_is_a_431()
    {
        await using var t = TestServer.Tcp(Quick);
        AssertError(await t.SendAsync($"GET /ping HTTP/1.1\r\nX-Big: {new string('a', 8000)}\r\n\r\n"), 431);
        AssertError(await t.SendAsync($"GET /ping HTTP/1.1\r\nX-Big: {new string('a', 8000)}"), 431);   // not even ended
        await StillServes(t);
    }

    [Fact]
    public async Task A_client_that_never_finishes_its_head_is_answered_408_and_closed_after_the_timeout()
    {
        await using var t = TestServer.Tcp(Quick);
        await using var c = await t.ConnectAsync();
        await c.SendAsync("GET /pi");
        var clock = Stopwatch.StartNew();
        var r = RawResponse.Parse(await c.ReadToEndAsync());
        Assert.Equal(408, r.Status);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Many_slow_clients_dripping_bytes_do_not_stop_others_from_being_served()
    {
        await using var t = TestServer.Tcp(Quick with { RequestHeadTimeout = TimeSpan.FromSeconds(30) });
        var slow = new List<RawConnection>();
        for (var i = 0; i < 200; i++)
        {
            var c = await t.ConnectAsync();
            await c.SendAsync("GET /ping HTTP/1.1\r\nX-Drip: ");
            slow.Add(c);
        }
        try
        {
            await TestServer.Eventually(() => t.Server.Connections >= 200, "all slow connections accepted");
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => StillServes(t)));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"20 pings took {clock.Elapsed} beside 200 slow clients");
        }
        finally
        {
            foreach (var c in slow) await c.DisposeAsync();
        }
        await TestServer.Eventually(() => t.Server.Connections == 0, "the slow clients' connections released");
    }

    [Fact]
    public async Task A_JSON_body_that_stalls_is_a_408_after_the_body_timeout()
    {
        await using var t = TestServer.Tcp(Quick);
        await using var c = await t.ConnectAsync();
        await c.SendAsync("POST /containers HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"handle\":");
        var r = RawResponse.Parse(await c.ReadToEndAsync());
        Assert.Equal(408, r.Status);
        Assert.Empty(t.Backend.Calls);
    }

    [Fact]
    public async Task A_stalled_upload_ends_after_the_idle_timeout_and_the_backend_sees_the_failure()
    {
        await using var t = TestServer.Tcp(Quick);
        await using var c = await t.ConnectAsync();
        await c.SendAsync("PUT /containers/h/files?destination=%2F HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        var r = RawResponse.Parse(await c.ReadToEndAsync());
        Assert.Equal(408, r.Status);
        Assert.Empty(t.Backend.StreamedIn);   // the fake reads to the end: it never got one
    }

    [Fact]
    public async Task An_upload_sent_slowly_but_steadily_is_not_cut_off()
    {
        // an idle timeout ten times the gap between chunks, and the upload as a whole longer than every timeout
        await using var t = TestServer.Tcp(Quick);
        await using var c = await t.ConnectAsync();
        await c.SendAsync("PUT /containers/h/files?destination=%2F HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (var i = 0; i < 12; i++)   // 12 x 150 ms, never idle for the timeout
        {
            await c.SendAsync("1\r\nx\r\n");
            await Task.Delay(150);
        }
        await c.SendAsync("0\r\n\r\n");
        Assert.Equal(200, RawResponse.Parse(await c.ReadToEndAsync()).Status);
        Assert.Equal("xxxxxxxxxxxx", Encoding.ASCII.GetString(Assert.Single(t.Backend.StreamedIn)));
    }

    [Fact]
    public async Task Expect_100_continue_gets_its_interim_answer_before_the_body_is_sent()
    {
        await using var t = TestServer.Tcp(Quick);
        await using var c = await t.ConnectAsync();
        var json = Golden.Json("create.minimal");
        await c.SendAsync($"POST /containers HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {json.Length}\r\n\r\n");
        Assert.Equal("HTTP/1.1 100 Continue\r\n\r\n", await c.ReadHeadAsync());
        await c.SendAsync(json);
        Assert.Equal("{\"Handle\":\"generated\"}\n", RawResponse.Parse(await c.ReadToEndAsync()).Body);
    }

    [Fact]
    public async Task Host_and_unknown_headers_are_not_checked()
    {
        await using var t = TestServer.Tcp(Quick);
        var r = await t.SendAsync("GET /ping HTTP/1.1\r\nHost: evil.example\r\nX-Garden-Token: whatever\r\n\r\n");
        Assert.Equal(200, r.Status);
        Assert.Equal(200, (await t.SendAsync("GET /ping HTTP/1.0\r\n\r\n")).Status);
        Assert.Equal(200, (await t.SendAsync("GET /ping HTTP/1.1\n\n")).Status);   // bare LF line ends
    }

    [Fact]
    public async Task A_bad_request_on_a_process_route_is_answered_without_Connection_close()
    {
        // Go's httputil.ClientConn would turn an answer with "Connection: close" into "persistent connection closed"
        await using var t = TestServer.Tcp(Quick);
        var r = await t.SendAsync("POST /containers/h1/processes HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops");
        AssertError(r, 400);
        Assert.False(r.Headers.ContainsKey("Connection"));
        var bad = await t.SendAsync("GET /containers/h1/processes/p%zz HTTP/1.1\r\n\r\n");
        AssertError(bad, 400);
        Assert.False(bad.Headers.ContainsKey("Connection"));
        Assert.Empty(t.Backend.Requests<Api.RunRequest>("Run"));
    }

    [Fact]
    public async Task More_connections_than_allowed_are_refused_with_a_service_unavailable_error()
    {
        await using var t = TestServer.Tcp(Quick with { MaxConnections = 3, RequestHeadTimeout = TimeSpan.FromSeconds(30) });
        var held = new List<RawConnection>();
        for (var i = 0; i < 3; i++)
        {
            var c = await t.ConnectAsync();
            await c.SendAsync("GET /pi");
            held.Add(c);
        }
        await TestServer.Eventually(() => t.Server.Connections == 3, "three connections held");
        var refused = await t.SendAsync(PlainRouteTests.GoRequest("GET", "/ping"));
        Assert.Equal(503, refused.Status);
        Assert.Contains("\"Type\":\"ServiceUnavailableError\"", refused.Body);
        foreach (var c in held) await c.DisposeAsync();
        await TestServer.Eventually(() => t.Server.Connections == 0, "held connections released");
        await StillServes(t);
    }
}
