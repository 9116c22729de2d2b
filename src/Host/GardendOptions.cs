using System.CommandLine;
using System.CommandLine.Help;
using Akka.Configuration;

namespace Garden.Host;

/// <summary>gardend's command line (System.CommandLine): --state-dir, --socket, --config FILE, --akka-remote, --garden-http, each declared
/// once with its help. Flags override the file, the file the defaults (<see cref="BuildConfig"/>).</summary>
public sealed record GardendOptions(string? StateDir, string? Socket, string? ConfigFile)
{
    /// <summary>--akka-remote HOST:PORT (garden.akka-remote.address); null = as configured (off by default).</summary>
    public string? AkkaRemote { get; init; }

    /// <summary>--garden-http ADDRESS (garden.garden-http.address); null = as configured (off by default).</summary>
    public string? GardenHttp { get; init; }

    /// <summary>--log-format text|json (garden.log.format); null = as configured (text by default).</summary>
    public string? LogFormat { get; init; }

    private static readonly Option<string?> StateDirFlag = Flag("--state-dir", "DIR",
        "journal and container files (default /var/lib/garden-actors; garden.state-dir)");
    private static readonly Option<string?> SocketFlag = Flag("--socket", "PATH",
        "gRPC Unix socket, mode 0600 (default /run/garden-actors/garden.sock; garden.gateway.socket)");
    private static readonly Option<string?> ConfigFlag = Flag("--config", "FILE", "HOCON overrides (see hocon/gardend.conf)");
    private static readonly Option<string?> AkkaRemoteFlag = Flag("--akka-remote", "HOST:PORT",
        "also serve the API over Akka.Remote at akka.tcp://garden@HOST:PORT/user/host (default off; garden.akka-remote.address). " +
        "It has no authentication: on 127.0.0.1 any local user can create containers; any other address requires TLS " +
        "(garden.akka-remote.tls)");
    private static readonly Option<string?> GardenHttpFlag = Flag("--garden-http", "ADDRESS",
        "also serve Garden's HTTP+JSON API (gaol, Garden's Go client) at HOST:PORT or a unix socket path (mode 0600) " +
        "(default off; garden.garden-http.address). It has no authentication; an address other than loopback is refused " +
        "unless garden.garden-http.allow-non-loopback = on");
    private static readonly Option<string?> LogFormatFlag = Flag("--log-format", "text|json",
        "text: one line per entry (the default); json: one JSON object per line with timestamp, level, message and, where " +
        "known, handle and operation (garden.log.format)");
    private static readonly Option<bool> VersionFlag = new("--version") { Description = "print gardend's version and exit" };
    private static readonly HelpOption HelpFlag = new("--help", "-h")
    {
        Description = "this help",
        Action = new HelpAction { MaxWidth = 110 },
    };
    private static readonly Option<string?>[] Flags = [StateDirFlag, SocketFlag, ConfigFlag, AkkaRemoteFlag, GardenHttpFlag, LogFormatFlag];

    private static readonly Command CommandLine = new("gardend",
        "The Garden.Actors daemon: serves the Garden API over gRPC on a Unix socket (and Akka.Remote, Garden HTTP when asked).")
    {
        StateDirFlag, SocketFlag, ConfigFlag, AkkaRemoteFlag, GardenHttpFlag, LogFormatFlag, VersionFlag, HelpFlag,
    };

    /// <summary>No response files, no bundling: every word is what it says.</summary>
    private static readonly ParserConfiguration Parsing = new() { ResponseFileTokenReplacer = null, EnablePosixBundling = false };

    /// <summary>The help, as System.CommandLine writes it from the flags' declarations.</summary>
    public static string Usage
    {
        get
        {
            var output = new StringWriter();
            CommandLine.Parse(["--help"], Parsing).Invoke(new InvocationConfiguration { Output = output });
            return output.ToString().TrimEnd();
        }
    }

    /// <summary>Throws <see cref="HelpRequested"/> for --help anywhere, and <see cref="ArgumentException"/> naming what was
    /// wrong: an unknown argument, a flag without its value or given twice.</summary>
    public static GardendOptions Parse(IReadOnlyList<string> args)
    {
        var result = CommandLine.Parse(args, Parsing);
        if (result.GetResult(HelpFlag) is not null) throw new HelpRequested();
        if (result.GetValue(VersionFlag) && result.UnmatchedTokens.Count == 0) throw new VersionRequested();
        if (result.UnmatchedTokens.FirstOrDefault() is { } unknown) throw new ArgumentException($"unknown argument: {unknown}");
        foreach (var flag in Flags)
        {
            if (result.GetResult(flag) is not { } given) continue;
            if (given.Tokens.Count < given.IdentifierTokenCount || given.Tokens.Any(t => t.Value.Length == 0))
                throw new ArgumentException($"{flag.Name} needs a value");
            if (given.IdentifierTokenCount > 1) throw new ArgumentException($"{flag.Name} given more than once");
        }
        if (result.Errors.FirstOrDefault() is { } error) throw new ArgumentException(error.Message);
        return new GardendOptions(result.GetValue(StateDirFlag), result.GetValue(SocketFlag), result.GetValue(ConfigFlag))
        {
            AkkaRemote = result.GetValue(AkkaRemoteFlag),
            GardenHttp = result.GetValue(GardenHttpFlag),
            LogFormat = result.GetValue(LogFormatFlag),
        };
    }

    private static Option<string?> Flag(string name, string helpName, string description) =>
        new(name) { HelpName = helpName, Description = description };

    /// <summary>flags → file → embedded defaults of each assembly.</summary>
    public Config BuildConfig()
    {
        var config = ConfigurationFactory.Empty;
        var overrides = new List<string>();
        if (StateDir is not null) overrides.Add($"garden.state-dir = {Quote(Path.GetFullPath(StateDir))}");
        if (Socket is not null) overrides.Add($"garden.gateway.socket = {Quote(Path.GetFullPath(Socket))}");
        if (AkkaRemote is not null) overrides.Add($"garden.akka-remote.address = {Quote(AkkaRemote)}");
        if (GardenHttp is not null) overrides.Add($"garden.garden-http.address = {Quote(GardenHttp)}");
        if (LogFormat is not null) overrides.Add($"garden.log.format = {Quote(LogFormat)}");
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

public sealed class VersionRequested : Exception;

/// <summary>gardend's version: the build's informational version (the release and, when built from git, the commit).</summary>
public static class GardendVersion
{
    public static string Text { get; } =
        typeof(GardendVersion).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion
        ?? Garden.Actors.Host.HostActor.Version;
}
