using Akka.Actor;
using Garden.Actors;
using Garden.Host;
using Garden.Host.Gateway;
using Garden.Linux.Agent;

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
    Console.Error.WriteLine($"gardend: {e.Message}\n{GardendOptions.Usage}");
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

var settings = GardenSettings.Create(config);
var socketPath = config.GetString("garden.gateway.socket");
if (!File.Exists(settings.AgentBinary))
{
    Console.Error.WriteLine($"gardend: agent binary {settings.AgentBinary} not found (run `make install`, or set garden.agent-binary)");
    return 1;
}
Directory.CreateDirectory(settings.StateDir);
Directory.CreateDirectory(settings.DepotDir);
Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
File.Delete(socketPath); // a socket left by a killed daemon blocks the bind

var system = ActorSystem.Create("garden", config);
var effects = Wiring.WireLinux(settings);
var host = Wiring.WireActors(system, settings, effects);

var builder = WebApplication.CreateSlimBuilder();
var app = Wiring.WireGateway(builder, socketPath, new GatewayContext(host, settings.AskTimeout));
app.Lifetime.ApplicationStarted.Register(() =>
{
    File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    Console.WriteLine($"gardend {Garden.Actors.Host.HostActor.Version} serving on unix:{socketPath} (state {settings.StateDir})");
});
app.Lifetime.ApplicationStopping.Register(() => Console.WriteLine("gardend stopping; containers keep running"));

await app.RunAsync();
await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance);
File.Delete(socketPath);
return 0;
