using Garden.Cli.Args;

namespace Garden.Cli.Tests;

/// <summary><c>garden --version</c> is the client alone (no daemon needed); <c>garden version</c> asks gardend too.</summary>
public class VersionTests
{
    [Fact]
    public void The_flag_is_the_client_alone_and_the_command_asks_the_server()
    {
        Assert.False(Assert.IsType<VersionCommand>(CommandLineParser.Parse(["--version"]).Command).Server);
        Assert.True(Assert.IsType<VersionCommand>(CommandLineParser.Parse(["version"]).Command).Server);
        Assert.True(Assert.IsType<VersionCommand>(CommandLineParser.Parse(["--json", "version"]).Command).Server);
        Assert.Contains("gardend", Usage.For("version"));
    }
}
