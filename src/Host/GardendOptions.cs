using Akka.Configuration;

namespace Garden.Host;

/// <summary>gardend's command line: --state-dir, --socket, --config FILE. Flags override the file, the file the defaults.</summary>
public sealed record GardendOptions(string? StateDir, string? Socket, string? ConfigFile)
{
    /// <summary>--akka-remote HOST:PORT (garden.akka-remote.address); null = as configured (off by default).</summary>
    public string? AkkaRemote { get; init; }

    public const string Usage = """
        usage: gardend [--state-dir DIR] [--socket PATH] [--config FILE] [--akka-remote HOST:PORT]
          --state-dir DIR   journal and container files (default /var/lib/garden-actors)
          --socket PATH     gRPC Unix socket, mode 0600 (default /run/garden-actors/garden.sock)
          --config FILE     HOCON overrides (see hocon/gardend.conf)
          --akka-remote HOST:PORT
                            also serve the API over Akka.Remote at akka.tcp://garden@HOST:PORT/user/host (default off;
                            garden.akka-remote.address). It has no authentication: on 127.0.0.1 any local user can
                            create containers; any other address requires TLS (garden.akka-remote.tls)
        """;

    public static GardendOptions Parse(IReadOnlyList<string> args)
    {
        string? stateDir = null, socket = null, config = null, akkaRemote = null;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string Value()
            {
                var eq = arg.IndexOf('=');
                if (eq > 0) return arg[(eq + 1)..];
                if (i + 1 >= args.Count) throw new ArgumentException($"{arg} needs a value");
                return args[++i];
            }
            var name = arg.Contains('=') ? arg[..arg.IndexOf('=')] : arg;
            switch (name)
            {
                case "--state-dir": stateDir = Value(); break;
                case "--socket": socket = Value(); break;
                case "--config": config = Value(); break;
                case "--akka-remote": akkaRemote = Value(); break;
                case "-h" or "--help": throw new HelpRequested();
                default: throw new ArgumentException($"unknown argument: {arg}");
            }
        }
        return new GardendOptions(stateDir, socket, config) { AkkaRemote = akkaRemote };
    }

    /// <summary>flags → file → embedded defaults of each assembly.</summary>
    public Config BuildConfig()
    {
        var config = ConfigurationFactory.Empty;
        var overrides = new List<string>();
        if (StateDir is not null) overrides.Add($"garden.state-dir = {Quote(Path.GetFullPath(StateDir))}");
        if (Socket is not null) overrides.Add($"garden.gateway.socket = {Quote(Path.GetFullPath(Socket))}");
        if (AkkaRemote is not null) overrides.Add($"garden.akka-remote.address = {Quote(AkkaRemote)}");
        if (overrides.Count > 0) config = ConfigurationFactory.ParseString(string.Join("\n", overrides));
        if (ConfigFile is not null)
        {
            if (!File.Exists(ConfigFile)) throw new ArgumentException($"--config: {ConfigFile} does not exist");
            config = config.WithFallback(ConfigurationFactory.ParseString(File.ReadAllText(ConfigFile)));
        }
        return config.WithFallback(Embedded()).WithFallback(Garden.Actors.GardenSettings.DefaultConfig())
            .WithFallback(Garden.Protocol.Journal.ProtocolConfig.Default());
    }

    private static Config Embedded()
    {
        using var stream = typeof(GardendOptions).Assembly.GetManifestResourceStream("Garden.Host.reference.conf")!;
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}

public sealed class HelpRequested : Exception;
