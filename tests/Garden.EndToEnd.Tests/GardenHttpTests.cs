using System.Formats.Tar;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>gardend's Garden HTTP front door (`--garden-http`), driven as Garden's Go client drives it: one request per
/// connection, Run hijacking its connection for newline-delimited JSON, stdout and stderr on requests of their own.</summary>
public sealed class GardenHttpTests
{
    [InstallFact]
    public async Task Create_stream_in_run_stream_out_destroy_over_a_unix_socket()
    {
        await using var d = new Gardend();
        var path = Path.Combine(d.Dir, "garden-http.sock");
        await File.WriteAllBytesAsync(path, []); // a stale file where the socket goes: removed, not an error
        d.ExtraArgs = ["--garden-http", path];
        await d.StartAsync();
        Assert.Contains($"Garden HTTP API at unix:{path}", d.Log);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        await Lifecycle(new GardenWire(new UnixDomainSocketEndPoint(path)), $"gh-unix-{Guid.NewGuid():N}"[..16]);

        await d.StopAsync(); // SIGTERM
        Assert.Equal(0, d.ExitCode);
        Assert.False(File.Exists(path), "the socket is removed at stop");
    }

    [InstallFact]
    public async Task Create_stream_in_run_stream_out_destroy_over_loopback_tcp()
    {
        var port = RemoteDaemonFixture.FreePort();
        await using var d = new Gardend { ExtraArgs = ["--garden-http", $"127.0.0.1:{port}"] };
        await d.StartAsync();
        Assert.Contains($"Garden HTTP API at 127.0.0.1:{port}", d.Log);

        await Lifecycle(new GardenWire(new IPEndPoint(IPAddress.Loopback, port)), $"gh-tcp-{Guid.NewGuid():N}"[..16]);

        await d.StopAsync();
        Assert.Equal(0, d.ExitCode);
        var refused = await Assert.ThrowsAsync<SocketException>(() => new GardenWire(new IPEndPoint(IPAddress.Loopback, port)).ConnectAsync());
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [InstallFact]
    public async Task A_non_loopback_address_is_refused_with_exit_2_naming_the_setting()
    {
        await using var d = new Gardend { ExtraArgs = ["--garden-http", $"0.0.0.0:{RemoteDaemonFixture.FreePort()}"] };
        Assert.Equal(2, await d.StartExpectingExitAsync());
        Assert.Contains("gardend: --garden-http 0.0.0.0:", d.Log);
        Assert.Contains("not a loopback address", d.Log);
        Assert.Contains("garden.garden-http.allow-non-loopback = on", d.Log);
        Assert.False(File.Exists(d.Socket));
    }

    [InstallFact]
    public async Task Allow_non_loopback_serves_every_address_and_says_so()
    {
        var port = RemoteDaemonFixture.FreePort();
        await using var d = new Gardend("garden.garden-http.allow-non-loopback = on") { ExtraArgs = ["--garden-http", $"0.0.0.0:{port}"] };
        await d.StartAsync();
        Assert.Contains("NOT loopback", d.Log);
        var ping = await new GardenWire(new IPEndPoint(IPAddress.Loopback, port)).RequestAsync("GET", "/ping");
        Assert.Equal(200, ping.Status);
        Assert.Equal("{}", ping.Body.Trim());
    }

    [InstallFact]
    public async Task A_malformed_address_is_a_configuration_error_naming_the_flag()
    {
        await using var d = new Gardend { ExtraArgs = ["--garden-http", "no-port-here"] };
        Assert.Equal(2, await d.StartExpectingExitAsync());
        Assert.Contains("--garden-http / garden.garden-http.address", d.Log);
    }

    [InstallFact]
    public async Task A_port_already_in_use_stops_gardend_with_exit_1_naming_the_address()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        await using var d = new Gardend { ExtraArgs = ["--garden-http", $"127.0.0.1:{port}"] };
        Assert.Equal(1, await d.StartExpectingExitAsync());
        Assert.Contains($"gardend: --garden-http 127.0.0.1:{port}: cannot listen: ", d.Log);
        Assert.False(File.Exists(d.Socket));
    }

    [InstallFact]
    public async Task Off_by_default()
    {
        await using var d = new Gardend();
        await d.StartAsync();
        Assert.DoesNotContain("Garden HTTP API", d.Log);
    }

    /// <summary>Garden's disk scope through its own API: total (0, Garden's default) takes the image off the room the
    /// container's disk gets, exclusive (1) does not; a total limit the image leaves too little of is refused naming disk.
    /// And the debug endpoint: gardend's own memory numbers at GET /debug/vars.</summary>
    [InstallFact]
    public async Task A_total_disk_limit_counts_the_image_an_exclusive_one_does_not_and_debug_vars_are_served()
    {
        var port = RemoteDaemonFixture.FreePort();
        var debugPort = RemoteDaemonFixture.FreePort();
        await using var d = new Gardend($"garden.garden-http.debug-address = \"127.0.0.1:{debugPort}\"") { ExtraArgs = ["--garden-http", $"127.0.0.1:{port}"] };
        await d.StartAsync();
        var g = new GardenWire(new IPEndPoint(IPAddress.Loopback, port));
        var id = Guid.NewGuid().ToString("N")[..8];
        var (total, exclusive) = ($"gh-tot-{id}", $"gh-exc-{id}");
        try
        {
            Assert.Equal(200, (await g.RequestAsync("POST", "/containers", "{\"handle\":\"" + total + "\",\"limits\":{\"disk_limits\":{\"byte_hard\":33554432}}}")).Status);
            Assert.Equal(200, (await g.RequestAsync("POST", "/containers", "{\"handle\":\"" + exclusive + "\",\"limits\":{\"disk_limits\":{\"byte_hard\":33554432,\"scope\":1}}}")).Status);
            async Task<JsonElement> Metrics(string h) => JsonDocument.Parse((await d.CliAsync("--json", "metrics", h)).Stdout).RootElement;
            ulong U(JsonElement e, string name) => e.TryGetProperty(name, out var v) ? ulong.Parse(v.ToString()) : 0;
            var (t, x) = (await Metrics(total), await Metrics(exclusive));
            var image = U(t, "diskImageBytes");
            Assert.True(image > 1UL << 20, t.ToString());
            // the total container's file system is smaller by about the image (ext4 keeps a share of either for itself)
            var less = U(x, "diskLimitBytes") - U(t, "diskLimitBytes");
            Assert.InRange(less, image * 8 / 10, image * 11 / 10);
            var limits = await g.RequestAsync("GET", $"/containers/{exclusive}/limits/disk");
            Assert.Contains("\"scope\":1", limits.Body);

            var small = await g.RequestAsync("POST", "/containers", "{\"handle\":\"gh-small-" + id + "\",\"limits\":{\"disk_limits\":{\"byte_hard\":9437184}}}");
            Assert.NotEqual(200, small.Status);
            Assert.Contains("disk", small.Body);
            Assert.Contains($"{image} bytes", small.Body);
        }
        finally
        {
            await g.RequestAsync("DELETE", $"/containers/{total}");
            await g.RequestAsync("DELETE", $"/containers/{exclusive}");
        }

        using var http = new HttpClient();
        var vars = JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{debugPort}/debug/vars")).RootElement;
        Assert.True(vars.GetProperty("memstats").GetProperty("Alloc").GetUInt64() > 0, vars.ToString());
        Assert.Contains(vars.GetProperty("cmdline").EnumerateArray(), a => a.GetString()!.EndsWith("gardend.dll"));
    }

    /// <summary>create → stream in → run (stdin, stdout, stderr, exit status) → stream out → info → destroy, and the
    /// errors Garden's client maps back to its types.</summary>
    private static async Task Lifecycle(GardenWire g, string handle)
    {
        var ping = await g.RequestAsync("GET", "/ping");
        Assert.Equal((200, "{}"), (ping.Status, ping.Body.Trim()));

        var created = await g.RequestAsync("POST", "/containers", $$$"""{"handle":"{{{handle}}}","image":{},"limits":{},"properties":{"team":"http"}}""");
        Assert.Equal(200, created.Status);
        Assert.Equal(handle, JsonDocument.Parse(created.Body).RootElement.GetProperty("Handle").GetString());
        try
        {
            var list = await g.RequestAsync("GET", "/containers?team=http");
            Assert.Contains(handle, list.Body);

            using (var tar = new MemoryStream())
            {
                await using (var w = new TarWriter(tar, leaveOpen: true))
                    await w.WriteEntryAsync(new PaxTarEntry(TarEntryType.RegularFile, "hello.txt") { DataStream = new MemoryStream("hi from a tar\n"u8.ToArray()) });
                var streamedIn = await g.RequestAsync("PUT", $"/containers/{handle}/files?destination=%2Ftmp", tar.ToArray(), "application/x-tar");
                Assert.Equal(200, streamedIn.Status);
            }

            // Run: 201 and the ids, then stdout and stderr on requests of their own, stdin as payloads, the exit status last
            await using var main = await g.ConnectAsync();
            var spec = """{"path":"sh","args":["-c","cat /tmp/hello.txt; read x; echo got $x; echo oops >&2; exit 3"],"rlimits":{},"image":{}}""" + "\n";
            await main.SendAsync($"POST /containers/{handle}/processes HTTP/1.1\r\nHost: api\r\nContent-Length: {Encoding.UTF8.GetByteCount(spec)}\r\nContent-Type: application/json\r\n\r\n{spec}");
            Assert.StartsWith("HTTP/1.1 201", await main.ReadHeadAsync());
            var first = JsonDocument.Parse(await main.ReadLineAsync() ?? "").RootElement;
            var pid = first.GetProperty("process_id").GetString()!;
            var sid = first.GetProperty("stream_id").GetString()!;
            await using var stdout = await g.ConnectAsync();
            await stdout.SendAsync($"GET /containers/{handle}/processes/{pid}/attaches/{sid}/stdout HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n\r\n");
            await using var stderr = await g.ConnectAsync();
            await stderr.SendAsync($"GET /containers/{handle}/processes/{pid}/attaches/{sid}/stderr HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n\r\n");
            Assert.StartsWith("HTTP/1.1 200", await stdout.ReadHeadAsync());
            Assert.StartsWith("HTTP/1.1 200", await stderr.ReadHeadAsync());
            await main.SendAsync($"{{\"process_id\":\"{pid}\",\"source\":0,\"data\":\"yes\\n\"}}\n");
            var last = JsonDocument.Parse(await main.ReadLineAsync() ?? "").RootElement;
            Assert.Equal(3, last.GetProperty("exit_status").GetInt32());
            Assert.Equal("hi from a tar\ngot yes\n", await stdout.ReadToEndAsync());
            Assert.Equal("oops\n", await stderr.ReadToEndAsync());

            var streamedOut = await g.RequestBytesAsync("GET", $"/containers/{handle}/files?source=%2Ftmp%2Fhello.txt");
            Assert.Equal(200, streamedOut.Status);
            using (var reader = new TarReader(new MemoryStream(streamedOut.Body)))
            {
                var entry = await reader.GetNextEntryAsync();
                Assert.NotNull(entry);
                Assert.Equal("hello.txt", entry.Name);
                Assert.Equal("hi from a tar\n", await new StreamReader(entry.DataStream!).ReadToEndAsync());
            }

            var info = JsonDocument.Parse((await g.RequestAsync("GET", $"/containers/{handle}/info")).Body).RootElement;
            Assert.Equal("active", info.GetProperty("State").GetString());
            Assert.Equal("http", info.GetProperty("Properties").GetProperty("team").GetString());

            var unknownProcess = await g.RequestAsync("GET", $"/containers/{handle}/processes/no-such-process");
            Assert.Equal("ProcessNotFoundError", JsonDocument.Parse(unknownProcess.Body).RootElement.GetProperty("Type").GetString());
        }
        finally
        {
            var destroyed = await g.RequestAsync("DELETE", $"/containers/{handle}");
            Assert.Equal((200, "{}"), (destroyed.Status, destroyed.Body.Trim()));
        }
        var gone = await g.RequestAsync("GET", $"/containers/{handle}/info");
        Assert.Equal(404, gone.Status);
        var error = JsonDocument.Parse(gone.Body).RootElement;
        Assert.Equal("ContainerNotFoundError", error.GetProperty("Type").GetString());
        Assert.Equal(handle, error.GetProperty("Handle").GetString());
    }
}

/// <summary>Garden's HTTP API on the wire: plain requests through HttpClient (one connection each, as Garden's client),
/// hijacked ones on a raw connection.</summary>
internal sealed class GardenWire(EndPoint endpoint)
{
    public async Task<RawConnection> ConnectAsync()
    {
        var s = endpoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await s.ConnectAsync(endpoint);
        }
        catch
        {
            s.Dispose();
            throw;
        }
        return new RawConnection(s);
    }

    private HttpClient Client() => new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.Zero,
        ConnectCallback = async (_, ct) =>
        {
            var c = await ConnectAsync();
            return new NetworkStream(c.Socket, ownsSocket: true);
        },
    })
    { BaseAddress = new Uri("http://api"), Timeout = TimeSpan.FromSeconds(60) };

    public async Task<(int Status, string Body)> RequestAsync(string method, string path, string? json = null)
    {
        var (status, body) = await RequestBytesAsync(method, path, json is null ? null : Encoding.UTF8.GetBytes(json), "application/json");
        return (status, Encoding.UTF8.GetString(body));
    }

    public async Task<(int Status, string Body)> RequestAsync(string method, string path, byte[] body, string contentType)
    {
        var (status, bytes) = await RequestBytesAsync(method, path, body, contentType);
        return (status, Encoding.UTF8.GetString(bytes));
    }

    public async Task<(int Status, byte[] Body)> RequestBytesAsync(string method, string path, byte[]? body = null, string contentType = "application/json")
    {
        using var client = Client();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.ConnectionClose = true;
        if (body is not null)
        {
            request.Content = new ByteArrayContent(body);
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        }
        using var response = await client.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsByteArrayAsync());
    }
}

/// <summary>One raw connection: what was sent, and the bytes back.</summary>
internal sealed class RawConnection(Socket socket) : IAsyncDisposable
{
    private readonly MemoryStream _pending = new();

    public Socket Socket => socket;

    public async Task SendAsync(string text) => await socket.SendAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None);

    private async Task<bool> FillAsync()
    {
        var buffer = new byte[8192];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        if (n == 0) return false;
        var rest = _pending.ToArray()[(int)_pending.Position..];
        _pending.SetLength(0);
        _pending.Write(rest);
        _pending.Write(buffer, 0, n);
        _pending.Position = 0;
        return true;
    }

    private string? Take(byte[] delimiter)
    {
        var bytes = _pending.ToArray();
        var start = (int)_pending.Position;
        var at = bytes.AsSpan(start).IndexOf(delimiter);
        if (at < 0) return null;
        _pending.Position = start + at + delimiter.Length;
        return Encoding.UTF8.GetString(bytes, start, at);
    }

    /// <summary>The response head (status line and headers).</summary>
    public async Task<string> ReadHeadAsync()
    {
        while (true)
        {
            if (Take("\r\n\r\n"u8.ToArray()) is { } head) return head;
            if (!await FillAsync()) throw new EndOfStreamException("the connection closed before the response head ended");
        }
    }

    public async Task<string?> ReadLineAsync()
    {
        while (true)
        {
            if (Take("\n"u8.ToArray()) is { } line) return line;
            if (!await FillAsync()) return null;
        }
    }

    public async Task<string> ReadToEndAsync()
    {
        while (await FillAsync()) { }
        var bytes = _pending.ToArray();
        return Encoding.UTF8.GetString(bytes, (int)_pending.Position, bytes.Length - (int)_pending.Position);
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
