using Akka.Actor;
using Garden.Actors;
using Garden.Host;
using Garden.Host.Gateway;

GardendOptions options;
try
{
    options = GardendOptions.Parse(args);
}
catch (HelpRequested)
{
    Console.WriteLine(GardendOptions.Usage);
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"gardend: {e.Message} ('gardend --help' lists the flags)");
    return 2;
}

Akka.Configuration.Config config;
try
{
    config = options.BuildConfig();
}
catch (Exception e) when (e is ArgumentException or Akka.Configuration.ConfigurationException)
{
    Console.Error.WriteLine($"gardend: bad configuration: {e.Message}");
    return 2;
}

Garden.Host.Remote.AkkaRemote? akkaRemote;
try
{
    akkaRemote = Garden.Host.Remote.AkkaRemote.FromConfig(config);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"gardend: {e.Message}");
    return 2;
}

GardenSettings settings;
try
{
    settings = GardenSettings.Create(config);
}
catch (Akka.Configuration.ConfigurationException e)
{
    Console.Error.WriteLine($"gardend: bad configuration: {e.Message}");
    return 2;
}
var socketPath = config.GetString("garden.gateway.socket");
if (!File.Exists(settings.AgentBinary))
{
    Console.Error.WriteLine($"gardend: agent binary {settings.AgentBinary} not found (run `make install`, or set garden.agent-binary)");
    return 1;
}
// The mount dir first: when it sits in the socket's dir, that dir is made traversable (0711) rather than 0700.
try
{
    Garden.Linux.Rootfs.OverlayRootfs.PrepareMountDir(settings.MountDir);
}
catch (Exception e) when (e is Garden.Linux.Rootfs.RootfsException or IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"gardend: {e.Message}");
    return 1;
}
StateDir.Close(settings); // 0700, secrets 0600: before the journal is opened or any actor writes
Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
File.Delete(socketPath); // a socket left by a killed daemon blocks the bind

try
{
    JournalFile.Prepare(settings.JournalPath);
}
catch (InvalidDataException e)
{
    Console.Error.WriteLine($"gardend: {e.Message}");
    return 3;
}
var journal = JournalFile.ConnectionString(settings.JournalPath).Replace("\\", "\\\\").Replace("\"", "\\\"");
config = Akka.Configuration.ConfigurationFactory.ParseString($"""
    akka.persistence.journal.sql.connection-string = "{journal}"
    akka.persistence.snapshot-store.sql.connection-string = "{journal}"
    """).WithFallback(config);

var system = ActorSystem.Create(Garden.Host.Remote.AkkaRemote.SystemName, config);
Akka.Persistence.Sql.SqlPersistence.Get(system); // before any persistent actor starts
var effects = Wiring.WireLinux(settings);
var host = Wiring.WireActors(system, settings, effects);

var builder = WebApplication.CreateSlimBuilder();
var gateway = new GatewayContext(host, settings.AskTimeout, system);
var app = Wiring.WireGateway(builder, socketPath, gateway);
// Akka.Remote is an ActorSystem of its own holding only /user/host: nothing a peer sends can reach the containers' actors.
var endpoint = akkaRemote is null ? null : ActorSystem.Create(Garden.Host.Remote.AkkaRemote.SystemName, akkaRemote.ToAkkaConfig().WithFallback(config));
if (akkaRemote is not null)
{
    Wiring.WireRemote(endpoint!, gateway);
    Console.WriteLine($"gardend: Akka.Remote API at {akkaRemote.Address}/user/host" +
                      (akkaRemote.CertificatePath is null ? " (no TLS: loopback only)" : " (TLS)"));
}
app.Lifetime.ApplicationStarted.Register(() =>
{
    File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    Console.WriteLine($"gardend {Garden.Actors.Host.HostActor.Version} serving on unix:{socketPath} (state {settings.StateDir})");
});
app.Lifetime.ApplicationStopping.Register(() => Console.WriteLine("gardend stopping; containers keep running"));
// The actor system ends on its own only when something fatal happened (an unreadable journal): stop serving too.
_ = system.WhenTerminated.ContinueWith(_ => app.Lifetime.StopApplication());

await app.RunAsync();
if (endpoint is not null) await endpoint.Terminate().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
var reason = CoordinatedShutdown.Get(system).ShutdownReason;
await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
await Wiring.ReleaseAtStopAsync(settings, effects);
File.Delete(socketPath);
return reason is Garden.Actors.Host.HostActor.JournalUnreadable ? 3 : 0;
