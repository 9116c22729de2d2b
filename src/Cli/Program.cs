using System.Reflection;
using Garden.Cli;
using Garden.Cli.Args;
using Garden.Cli.Commands;

// garden: the command-line client of gardend. Exit codes: 0 ok, 1 error, 2 bad usage;
// run/attach exit with the process's code, or 125 when garden itself failed.
return await Cli.MainAsync(args);

namespace Garden.Cli
{
    internal static class Cli
    {
        public const int Failure = 1;
        public const int BadUsage = 2;
        public const int ProcessCommandFailure = 125;

        public static async Task<int> MainAsync(string[] args)
        {
            var output = new Output();
            Invocation invocation;
            GardenAddress address;
            try
            {
                if (args.Length == 0)
                {
                    output.ErrorText(Usage.Overview);
                    return BadUsage;
                }
                invocation = CommandLineParser.Parse(args);
                address = GardenAddress.Resolve(invocation.Globals.Socket,
                    Environment.GetEnvironmentVariable(GardenAddress.EnvironmentVariable));
            }
            catch (UsageException e)
            {
                output.Error(e.Message);
                return IsProcessCommand(e.Command) ? ProcessCommandFailure : BadUsage;
            }

            output.Json = invocation.Globals.Json;
            switch (invocation.Command)
            {
                case HelpCommand help:
                    output.Line(Usage.For(help.Topic));
                    return 0;
                case VersionCommand { Server: false }:
                    output.Line("garden " + Version());
                    return 0;
            }

            if (address.IsAkka && !RemoteCli.Supported) return RemoteCli.RunJitBuild(args, output);
            using var channel = RemoteCli.CreateInvoker(address);
            var ctx = new CliContext(address, new Protocol.Api.Garden.GardenClient(channel.Invoker), output);
            try
            {
                return await Dispatch(ctx, invocation.Command);
            }
            catch (Exception e)
            {
                output.Error(Errors.Describe(e, address));
                return IsProcessCommand(invocation.Command.Name) ? ProcessCommandFailure : Failure;
            }
        }

        private static Task<int> Dispatch(CliContext ctx, CliCommand command) => command switch
        {
            PingCommand => HostCommands.PingAsync(ctx),
            VersionCommand => HostCommands.VersionAsync(ctx, Version()),
            CapacityCommand => HostCommands.CapacityAsync(ctx),
            CreateCommand c => HostCommands.CreateAsync(ctx, c),
            ListCommand c => HostCommands.ListAsync(ctx, c),
            DestroyCommand c => HostCommands.DestroyAsync(ctx, c),
            InfoCommand c => ContainerCommands.InfoAsync(ctx, c),
            StopCommand c => ContainerCommands.StopAsync(ctx, c),
            PropertyCommand c => ContainerCommands.PropertyAsync(ctx, c),
            LimitCommand c => ContainerCommands.LimitAsync(ctx, c),
            MetricsCommand c => ContainerCommands.MetricsAsync(ctx, c),
            NetInCommand c => NetworkCommands.NetInAsync(ctx, c),
            NetOutCommand c => NetworkCommands.NetOutAsync(ctx, c),
            RunCommand c => ProcessCommands.RunAsync(ctx, c),
            AttachCommand c => ProcessCommands.AttachAsync(ctx, c),
            SignalCommand c => ProcessCommands.SignalAsync(ctx, c),
            StreamInCommand c => FileCommands.StreamInAsync(ctx, c),
            StreamOutCommand c => FileCommands.StreamOutAsync(ctx, c),
            GraceTimeCommand c => ContainerCommands.GraceTimeAsync(ctx, c),
            EventsCommand c => ContainerCommands.EventsAsync(ctx, c),
            _ => throw new CliException($"command '{command.Name}' has no handler"),
        };

        /// <summary>run and attach pass the process's exit code through, so garden's own failures use 125.</summary>
        private static bool IsProcessCommand(string? name) => name is "run" or "attach";

        private static string Version() =>
            typeof(Cli).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? typeof(Cli).Assembly.GetName().Version?.ToString() ?? "unknown";
    }
}
