using Garden.Cli.Args;

namespace Garden.Cli.Tests;

/// <summary>akka.tcp://garden@HOST:PORT in --socket or GARDEN_ADDRESS selects Akka.Remote.</summary>
public class AkkaAddressTests
{
    [Theory]
    [InlineData("akka.tcp://garden@127.0.0.1:2552", "127.0.0.1", 2552, "akka.tcp://garden@127.0.0.1:2552")]
    [InlineData("akka.tcp://garden@localhost:2552/", "localhost", 2552, "akka.tcp://garden@localhost:2552")]
    [InlineData("akka.tcp://garden@10.0.0.1:2552/user/host", "10.0.0.1", 2552, "akka.tcp://garden@10.0.0.1:2552")]
    [InlineData("akka.ssl.tcp://garden@10.0.0.1:2552", "10.0.0.1", 2552, "akka.ssl.tcp://garden@10.0.0.1:2552")]
    public void Akka_forms(string text, string host, int port, string display)
    {
        var a = GardenAddress.Parse(text, "GARDEN_ADDRESS");
        Assert.True(a.IsAkka);
        Assert.False(a.IsUnix);
        Assert.Equal(host, a.Host);
        Assert.Equal(port, a.Port);
        Assert.Equal(display, a.AkkaAddress);
        Assert.Equal(display, a.ToString());
    }

    [Theory]
    [InlineData("akka.tcp://garden@host")]
    [InlineData("akka.tcp://127.0.0.1:2552")]
    [InlineData("akka.tcp://garden@host:0")]
    [InlineData("akka.tcp://garden@host:x")]
    public void Malformed_akka_addresses_are_usage_errors(string text)
    {
        var e = Assert.Throws<UsageException>(() => GardenAddress.Parse(text, "--socket"));
        Assert.Contains("akka.tcp://garden@HOST:PORT", e.Message);
    }

    [Fact]
    public void Other_addresses_are_not_akka() => Assert.False(GardenAddress.Parse("tcp://h:1", "--socket").IsAkka);
}
