using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Host;

namespace Garden.Host;

/// <summary>gardend's own steps around the generic host's lifetime. Registered before the actor system's and Kestrel's
/// hosted services, so it stops after both: the services start in order (this, the actor system, the Akka.Remote
/// endpoint, Kestrel) and stop in reverse. Started: the socket is made 0600 and the serving line printed. Stopping
/// (SIGTERM, or the actor system ending on its own): a line saying the containers keep running. Stopped, once the
/// actors have: the firewall's shared chains are released when no container has rules left, and the socket removed.</summary>
public sealed class GardendLifetime(GardendSettings settings, ContainerEffects effects, IHostApplicationLifetime lifetime) : IHostedService
{
    private ActorSystem? _system;

    /// <summary>Called by the actor starter with gardend's actor system (not the Akka.Remote endpoint's).</summary>
    public void ActorSystemStarted(ActorSystem system) => _system = system;

    /// <summary>3 when the actor system stopped because the journal could not be recovered
    /// (<see cref="HostActor.JournalUnreadable"/>), else 0.</summary>
    public int ExitCode =>
        _system is not null && CoordinatedShutdown.Get(_system).ShutdownReason is HostActor.JournalUnreadable ? Preflight.ExitJournalUnreadable : 0;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(() =>
        {
            File.SetUnixFileMode(settings.Gateway.Socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Operations.StartClock.Mark("gRPC");
            Console.WriteLine($"gardend {HostActor.Version} serving on unix:{settings.Gateway.Socket} (state {settings.Garden.StateDir}); " +
                              $"started in {Operations.StartClock.Now:F0} ms: {Operations.StartClock.Describe()}");
        });
        lifetime.ApplicationStopping.Register(() => Console.WriteLine("gardend stopping; containers keep running"));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await Wiring.ReleaseAtStopAsync(settings.Garden, effects);
        File.Delete(settings.Gateway.Socket);
    }
}
