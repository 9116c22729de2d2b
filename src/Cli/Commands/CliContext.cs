using Garden.Cli.Args;
using Garden.Protocol.Api;

namespace Garden.Cli.Commands;

/// <summary>What every command handler gets: the client, where it points, and where to write.</summary>
internal sealed record CliContext(GardenAddress Address, Garden.Protocol.Api.Garden.GardenClient Client, Output Output);
