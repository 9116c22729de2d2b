using Garden.Cli.Args;

namespace Garden.Cli.Tests;

public class AddressTests
{
    [Fact]
    public void Default_is_the_daemon_socket() =>
        Assert.Equal(GardenAddress.Unix("/run/garden-actors/garden.sock"), GardenAddress.Resolve(null, null));

    [Fact]
    public void Flag_wins_over_environment()
    {
        Assert.Equal(GardenAddress.Unix("/a.sock"), GardenAddress.Resolve("/a.sock", "/b.sock"));
        Assert.Equal(GardenAddress.Unix("/b.sock"), GardenAddress.Resolve(null, "/b.sock"));
        Assert.Equal(GardenAddress.Unix(GardenAddress.DefaultSocket), GardenAddress.Resolve(null, ""));
    }

    [Theory]
    [InlineData("/run/g.sock", "/run/g.sock")]
    [InlineData("relative.sock", "relative.sock")]
    [InlineData("unix:///run/g.sock", "/run/g.sock")]
    [InlineData("unix:/run/g.sock", "/run/g.sock")]
    [InlineData("UNIX:///run/g.sock", "/run/g.sock")]
    public void Unix_forms(string text, string path)
    {
        var a = GardenAddress.Parse(text, "--socket");
        Assert.True(a.IsUnix);
        Assert.Equal(path, a.SocketPath);
        Assert.Equal(path, a.ToString());
    }

    [Theory]
    [InlineData("tcp://127.0.0.1:7777", "127.0.0.1", 7777, "tcp://127.0.0.1:7777")]
    [InlineData("tcp://localhost:80/", "localhost", 80, "tcp://localhost:80")]
    [InlineData("tcp://[::1]:7777", "::1", 7777, "tcp://[::1]:7777")]
    public void Tcp_forms(string text, string host, int port, string display)
    {
        var a = GardenAddress.Parse(text, "GARDEN_ADDRESS");
        Assert.False(a.IsUnix);
        Assert.Equal((host, port), (a.Host, a.Port));
        Assert.Equal(display, a.ToString());
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("unix://", "no socket path")]
    [InlineData("tcp://host", "host and a port")]
    [InlineData("tcp://host:0", "bad port")]
    [InlineData("tcp://host:99999", "bad port")]
    [InlineData("tcp://host:http", "bad port")]
    [InlineData("tcp://::1:80", "brackets")]
    [InlineData("http://localhost:80", "unsupported address")]
    public void Bad_addresses_name_the_source_and_the_problem(string text, string expected)
    {
        var e = Assert.Throws<UsageException>(() => GardenAddress.Parse(text, "GARDEN_ADDRESS"));
        Assert.Contains("GARDEN_ADDRESS", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
