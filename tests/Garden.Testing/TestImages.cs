using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Garden.Linux.Process;

namespace Garden.Testing;

/// <summary>Small images built in the test with umoci from the busybox test rootfs, and their archives (skopeo). Three
/// layers: (1) the rootfs with /srv/gone, /srv/keep and /srv/dir/old; (2) /srv/owned (owner 1000:1000, mode 0640) with
/// /srv/gone deleted (a whiteout); (3) /etc/motd. Config: Env GREETING=from-image, WorkingDir /srv, User 1000:1000,
/// Entrypoint ["/bin/sh"], Cmd ["-c","echo hi"]. Tag "v1". Needs Debian's umoci and skopeo (Makefile deps).</summary>
public sealed class TestImages : IDisposable
{
    public string Dir { get; }
    public string Layout => Path.Combine(Dir, "layout");
    public string OciArchive => Path.Combine(Dir, "image.oci.tar");
    public string DockerArchive => Path.Combine(Dir, "image.docker.tar");
    public const string Tag = "v1";
    public const string DockerName = "test/img:v1";

    private TestImages(string dir) => Dir = dir;

    public static async Task<TestImages> BuildAsync()
    {
        var images = new TestImages(TestPaths.NewTempDir("images"));
        try { await images.BuildLayoutAsync(); }
        catch { images.Dispose(); throw; }
        return images;
    }

    private async Task BuildLayoutAsync()
    {
        var bundle = Path.Combine(Dir, "bundle");
        await Tool("umoci", "init", "--layout", Layout);
        await Tool("umoci", "new", "--image", $"{Layout}:{Tag}");
        // layer 1
        await Tool("umoci", "unpack", "--image", $"{Layout}:{Tag}", bundle);
        var root = Path.Combine(bundle, "rootfs");
        await Tool("/bin/cp", "-a", TestPaths.DefaultRootfs + "/.", root);
        Directory.CreateDirectory(Path.Combine(root, "srv/dir"));
        File.WriteAllText(Path.Combine(root, "srv/gone"), "one\n");
        File.WriteAllText(Path.Combine(root, "srv/keep"), "keep\n");
        File.WriteAllText(Path.Combine(root, "srv/dir/old"), "old\n");
        await Repack(bundle);
        // layer 2
        await Tool("umoci", "unpack", "--image", $"{Layout}:{Tag}", bundle);
        File.WriteAllText(Path.Combine(root, "srv/owned"), "hello\n");
        await Tool("/bin/chown", "1000:1000", Path.Combine(root, "srv/owned"));
        await Tool("/bin/chmod", "0640", Path.Combine(root, "srv/owned"));
        File.Delete(Path.Combine(root, "srv/gone"));
        await Repack(bundle);
        // layer 3
        await Tool("umoci", "unpack", "--image", $"{Layout}:{Tag}", bundle);
        File.WriteAllText(Path.Combine(root, "etc/motd"), "layer three\n");
        await Repack(bundle);
        await Tool("umoci", "config", "--image", $"{Layout}:{Tag}", "--config.env", "GREETING=from-image",
            "--config.workingdir", "/srv", "--config.user", "1000:1000", "--config.entrypoint", "/bin/sh",
            "--config.cmd", "-c", "--config.cmd", "echo hi");
        await Tool("umoci", "gc", "--layout", Layout);
        await Tool("skopeo", "copy", "--quiet", $"oci:{Layout}:{Tag}", $"oci-archive:{OciArchive}:{Tag}");
        await Tool("skopeo", "copy", "--quiet", $"oci:{Layout}:{Tag}", $"docker-archive:{DockerArchive}:{DockerName}");
    }

    private async Task Repack(string bundle)
    {
        await Tool("umoci", "repack", "--image", $"{Layout}:{Tag}", bundle);
        Directory.Delete(bundle, recursive: true);
    }

    /// <summary>Pushes the image to a registry on 127.0.0.1 (plain HTTP) as NAME:v1.</summary>
    public Task PushAsync(int port, string name = "test/img") =>
        Tool("skopeo", "copy", "--quiet", "--dest-tls-verify=false", $"oci:{Layout}:{Tag}", $"docker://127.0.0.1:{port}/{name}:{Tag}");

    /// <summary>The manifest of tag v1 in the layout, and its layers' digests (bottom first).</summary>
    public (string Digest, List<string> Layers, string Config) Manifest()
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Layout, "index.json")));
        var digest = index.RootElement.GetProperty("manifests").EnumerateArray()
            .First(m => m.GetProperty("annotations").GetProperty("org.opencontainers.image.ref.name").GetString() == Tag)
            .GetProperty("digest").GetString()!;
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Blob(digest)));
        return (digest, [.. manifest.RootElement.GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("digest").GetString()!)],
            manifest.RootElement.GetProperty("config").GetProperty("digest").GetString()!);
    }

    public string Blob(string digest) => Path.Combine(Layout, "blobs", "sha256", digest[7..]);

    /// <summary>A copy of the layout in which one byte of a blob, at fraction <paramref name="at"/> of it, is changed (its
    /// digest no longer matches).</summary>
    public string CorruptCopy(string digest, double at = 0.5)
    {
        var copy = Path.Combine(Dir, "corrupt-" + Guid.NewGuid().ToString("N")[..8]);
        Tool("/bin/cp", "-a", Layout, copy).GetAwaiter().GetResult();
        var blob = Path.Combine(copy, "blobs", "sha256", digest[7..]);
        var bytes = File.ReadAllBytes(blob);
        bytes[Math.Min((int)(bytes.Length * at), bytes.Length - 1)] ^= 0xff;
        File.WriteAllBytes(blob, bytes);
        return copy;
    }

    internal static async Task Tool(string tool, params string[] args)
    {
        var path = tool.StartsWith('/') ? tool : $"/usr/bin/{tool}";
        if (!File.Exists(path)) throw new InvalidOperationException($"{tool} is not installed (apt-get install umoci skopeo docker-registry; `make deps`)");
        var r = await Command.RunAsync(path, args);
        if (r.ExitCode != 0) throw new InvalidOperationException($"{tool} {string.Join(' ', args)}: exit {r.ExitCode}: {r.Stderr}{r.Stdout}");
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Debian's docker-registry (the distribution registry) on 127.0.0.1, storage and config in a temp dir; killed
/// on dispose.</summary>
public sealed class RegistryServer : IAsyncDisposable
{
    private readonly Process _process;
    public int Port { get; }
    public string Dir { get; }
    public string Host => $"127.0.0.1:{Port}";

    private RegistryServer(Process process, int port, string dir) => (_process, Port, Dir) = (process, port, dir);

    public static async Task<RegistryServer> StartAsync()
    {
        if (!File.Exists("/usr/bin/docker-registry")) throw new InvalidOperationException("docker-registry is not installed (`make deps`)");
        var dir = TestPaths.NewTempDir("registry");
        var port = FakeRegistry.FreePort();
        var config = Path.Combine(dir, "config.yml");
        File.WriteAllText(config, $"""
            version: 0.1
            log:
              level: error
            storage:
              filesystem:
                rootdirectory: {dir}/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:{port}
            """);
        var process = Process.Start(new ProcessStartInfo("/usr/bin/docker-registry", ["serve", config])
            { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new RegistryServer(process, port, dir);
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return server;
            }
            catch (SocketException) { await Task.Delay(100); }
            if (process.HasExited) break;
        }
        await server.DisposeAsync();
        throw new InvalidOperationException($"docker-registry did not listen on 127.0.0.1:{port}");
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>A registry written for tests, serving an OCI layout over plain HTTP on 127.0.0.1 (one request per
/// connection): it can ask for a bearer token (its own /token), drop the connection partway through a layer, send a
/// layer slowly, and counts the blob requests it gets.</summary>
public sealed class FakeRegistry : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly string _layout;
    private readonly Dictionary<string, int> _blobRequests = [];
    public const string Token = "test-token-123";

    public int Port { get; }
    public string Host => $"127.0.0.1:{Port}";
    public bool RequireToken { get; set; }
    /// <summary>Bytes of a layer blob sent before the connection is closed (null: all of it).</summary>
    public long? DropLayerAfter { get; set; }
    /// <summary>Delay between 4 KiB chunks of a layer blob.</summary>
    public TimeSpan LayerChunkDelay { get; set; }
    public int TokenRequests { get; private set; }

    public FakeRegistry(string layout)
    {
        _layout = layout;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(LoopAsync);
    }

    public int BlobRequests(string digest) { lock (_blobRequests) return _blobRequests.GetValueOrDefault(digest); }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                using (client)
                    try { await ServeAsync(client.GetStream()); }
                    catch (Exception) { /* the client went away */ }
            });
        }
    }

    private async Task ServeAsync(NetworkStream stream)
    {
        var head = new StringBuilder();
        var buffer = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(buffer, _stop.Token) == 0) return;
            head.Append((char)buffer[0]);
        }
        var lines = head.ToString().Split("\r\n");
        var path = lines[0].Split(' ')[1];
        var auth = lines.FirstOrDefault(l => l.StartsWith("Authorization:", StringComparison.OrdinalIgnoreCase))?[14..].Trim();
        if (path.StartsWith("/token", StringComparison.Ordinal))
        {
            TokenRequests++;
            await Respond(stream, 200, "application/json", Encoding.UTF8.GetBytes($"{{\"token\":\"{Token}\"}}"));
            return;
        }
        if (RequireToken && auth != $"Bearer {Token}")
        {
            await Respond(stream, 401, "application/json", "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}"u8.ToArray(),
                $"WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{Port}/token\",service=\"fake\",scope=\"repository:test/img:pull\"\r\n");
            return;
        }
        if (path == "/v2/") { await Respond(stream, 200, "application/json", "{}"u8.ToArray()); return; }
        var parts = path.Split('/');   // "", v2, test, img, manifests|blobs, ref
        var kind = parts[^2];
        var reference = parts[^1];
        if (kind == "manifests")
        {
            var digest = reference.StartsWith("sha256:", StringComparison.Ordinal) ? reference : TagDigest(reference);
            var file = digest is null ? null : BlobPath(digest);
            if (file is null || !File.Exists(file)) { await Respond(stream, 404, "application/json", "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}"u8.ToArray()); return; }
            await Respond(stream, 200, "application/vnd.oci.image.manifest.v1+json", File.ReadAllBytes(file), $"Docker-Content-Digest: {digest}\r\n");
            return;
        }
        if (kind == "blobs")
        {
            lock (_blobRequests) _blobRequests[reference] = _blobRequests.GetValueOrDefault(reference) + 1;
            var file = BlobPath(reference);
            if (!File.Exists(file)) { await Respond(stream, 404, "application/json", "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\"}]}"u8.ToArray()); return; }
            var bytes = File.ReadAllBytes(file);
            var isLayer = bytes.Length > 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n"), _stop.Token);
            var limit = isLayer && DropLayerAfter is { } drop ? (int)Math.Min(drop, bytes.Length) : bytes.Length;
            for (var sent = 0; sent < limit; sent += 4096)
            {
                await stream.WriteAsync(bytes.AsMemory(sent, Math.Min(4096, limit - sent)), _stop.Token);
                if (isLayer && LayerChunkDelay > TimeSpan.Zero) await Task.Delay(LayerChunkDelay, _stop.Token);
            }
            return;   // closing early is the drop
        }
        await Respond(stream, 404, "text/plain", "no"u8.ToArray());
    }

    private string? TagDigest(string tag)
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(_layout, "index.json")));
        return index.RootElement.GetProperty("manifests").EnumerateArray()
            .FirstOrDefault(m => m.TryGetProperty("annotations", out var a) && a.GetProperty("org.opencontainers.image.ref.name").GetString() == tag)
            is { ValueKind: JsonValueKind.Object } m ? m.GetProperty("digest").GetString() : null;
    }

    private string BlobPath(string digest) => Path.Combine(_layout, "blobs", "sha256", digest.Length > 7 ? digest[7..] : "none");

    private async Task Respond(NetworkStream stream, int status, string type, byte[] body, string extra = "")
    {
        var reason = status switch { 200 => "OK", 401 => "Unauthorized", _ => "Not Found" };
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {reason}\r\nContent-Type: {type}\r\nContent-Length: {body.Length}\r\n{extra}Connection: close\r\n\r\n"), _stop.Token);
        await stream.WriteAsync(body, _stop.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _stop.Dispose();
    }
}
