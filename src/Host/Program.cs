using Garden.Host;
using Garden.Host.Operations;

StartClock.Mark("runtime"); // the runtime's own start, up to Main
// systemd's NOTIFY_SOCKET is read and removed first, before any child process (runc would act on it) can inherit it
using var notify = SdNotify.FromEnvironment();

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
catch (VersionRequested)
{
    Console.WriteLine($"gardend {GardendVersion.Text}");
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"gardend: {e.Message} ('gardend --help' lists the flags)");
    return 2;
}

WebApplication app;
try
{
    JournalWarmUp.Start(); // beside everything up to the host's recovery, on the other core
    var settings = GardendSettings.Load(options);
    StartClock.Mark("settings");
    var json = settings.JsonLogs ? JsonLog.Install() : null; // from here on, every line out is a JSON object
    Preflight.Run(settings); // journal, state dir, mount dir and socket dir ready before the actor system starts
    StartClock.Mark("preflight");
    app = Wiring.WireGardend(settings, notify, json);
}
catch (StartupFailure e)
{
    Console.Error.WriteLine($"gardend: {e.Message}");
    return e.ExitCode;
}

var lifetime = app.Services.GetRequiredService<GardendLifetime>();
try
{
    await app.RunAsync();
}
catch (StartupFailure e) // the Akka.Remote port is taken
{
    Console.Error.WriteLine($"gardend: {e.Message}");
    return e.ExitCode;
}
catch (IOException e) // the socket cannot be bound
{
    Console.Error.WriteLine($"gardend: {e.Message}");
    return 1;
}
catch (Exception e)
{
    Console.Error.WriteLine($"gardend: {e}");
    return 1;
}
return lifetime.ExitCode;
