using System.Net;
using System.Net.Sockets;
using Garden.Host.GardenHttp;

namespace Garden.GardenHttp.Tests;

/// <summary>Listening: addresses, the Unix socket's permissions and what is found at its path.</summary>
public sealed class ServerTests
{
    [Theory]
    [InlineData("127.0.0.1:7777", "127.0.0.1:7777", true)]
    [InlineData("0.0.0.0:7777", "0.0.0.0:7777", false)]
    [InlineData("10.1.2.3:80", "10.1.2.3:80", false)]
    [InlineData("[::1]:7777", "[::1]:7777", true)]
    [InlineData("localhost:7777", "127.0.0.1:7777", true)]
    [InlineData("/run/garden-actors/garden-http.sock", "/run/garden-actors/garden-http.sock", true)]
    [InlineData("unix:/run/x.sock", "/run/x.sock", true)]
    public void Addresses_are_host_and_port_or_a_socket_path(string address, string endpoint, bool localOnly)
    {
        var e = GardenHttpServer.ParseAddress(address);
        Assert.Equal(endpoint, e.ToString());
        Assert.Equal(localOnly, GardenHttpServer.IsLocalOnly(e));
    }

    [Theory]
    [InlineData("")]
    [InlineData("7777")]
    [InlineData("garden.example:7777")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:http")]
    [InlineData("127.0.0.1:70000")]
    [InlineData("relative.sock")]
    public void Anything_else_is_refused_with_what_was_given(string address)
    {
        var e = Assert.Throws<ArgumentException>(() => GardenHttpServer.ParseAddress(address));
        if (address.Length > 0) Assert.Contains(address, e.Message);
    }

    [Fact]
    public async Task The_unix_socket_is_private_to_its_owner_and_removed_at_stop()
    {
        string path;
        await using (var t = TestServer.Unix())
        {
            path = t.EndPoint.ToString()!;
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            await t.Server.StopAsync();
            Assert.False(File.Exists(path));
        }
    }

    [Fact]
    public async Task A_socket_left_by_a_dead_server_is_replaced_a_live_one_or_a_file_with_content_is_not()
    {
        var dir = Directory.CreateTempSubdirectory("garden-test-http-").FullName;
        try
        {
            var path = Path.Combine(dir, "g.sock");
            // bound but not listening: what a killed server leaves (a disposed .NET socket would unlink its file, so it
            // stays undisposed until the end)
            using var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            dead.Bind(new UnixDomainSocketEndPoint(path));
            Assert.True(File.Exists(path));
            await using (var server = new GardenHttpServer(new FakeBackend()))
            {
                server.Start(new UnixDomainSocketEndPoint(path));
                await using var second = new GardenHttpServer(new FakeBackend());
                Assert.Contains("in use", Assert.Throws<IOException>(() => second.Start(new UnixDomainSocketEndPoint(path))).Message);
                using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await client.ConnectAsync(new UnixDomainSocketEndPoint(path));   // the first still serves
            }
            var file = Path.Combine(dir, "precious");
            await File.WriteAllTextAsync(file, "data");
            await using var third = new GardenHttpServer(new FakeBackend());
            Assert.Throws<IOException>(() => third.Start(new UnixDomainSocketEndPoint(file)));
            Assert.Equal("data", await File.ReadAllTextAsync(file));
            Assert.Throws<IOException>(() => third.Start(new UnixDomainSocketEndPoint(dir)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_TCP_port_in_use_fails_the_start_and_stopping_twice_is_harmless()
    {
        await using var t = TestServer.Tcp();
        await using var other = new GardenHttpServer(new FakeBackend());
        Assert.Throws<SocketException>(() => other.Start(t.EndPoint));
        await t.Server.StopAsync();
        await t.Server.StopAsync();
        Assert.Throws<InvalidOperationException>(() => t.Server.Start(new IPEndPoint(IPAddress.Loopback, 0)));
    }
}
