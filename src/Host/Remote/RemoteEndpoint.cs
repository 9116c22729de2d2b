using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Hosting.Logging;
using Garden.Host.Gateway;

namespace Garden.Host.Remote;

/// <summary>The Akka.Remote endpoint's lifetime in the generic host: an ActorSystem of its own holding only /user/host
/// (<see cref="AkkaRemote.Hardening"/>), started after gardend's actor system and stopped before it. Akka.Hosting keeps
/// one ActorSystem per host, gardend's own, whose actors no peer may address; this one logs into the same
/// Microsoft.Extensions.Logging (<see cref="AkkaLogger"/>).</summary>
public sealed class RemoteEndpoint(AkkaRemote remote, GardendSettings settings, IServiceProvider services, ILoggerFactory logging)
    : IHostedService
{
    private ActorSystem? _endpoint;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var config = ConfigurationFactory.ParseString($"akka.loggers = [\"{typeof(AkkaLogger).AssemblyQualifiedName}\"]")
            .WithFallback(remote.ToAkkaConfig())
            .WithFallback(settings.Akka);
        try
        {
            _endpoint = ActorSystem.Create(AkkaRemote.SystemName,
                BootstrapSetup.Create().WithConfig(config).And(new LoggerFactorySetup(logging)));
        }
        catch (Exception e) when (e.GetBaseException() is System.Net.Sockets.SocketException or Akka.Remote.RemoteTransportException)
        {
            throw new StartupFailure(1, $"{AkkaRemote.Flag} {remote.Address}: cannot listen: {e.GetBaseException().Message}");
        }
        Wiring.WireRemote(_endpoint, services.GetRequiredService<Garden.Host.ApiCore.IGardenApi>());
        Console.WriteLine($"gardend: Akka.Remote API at {remote.Address}/user/host" +
                          (remote.CertificatePath is null ? " (no TLS: loopback only)" : " (TLS)"));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_endpoint is null) return;
        try
        {
            await CoordinatedShutdown.Get(_endpoint).Run(CoordinatedShutdown.ClrExitReason.Instance).WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // the process is ending: the endpoint's connections go with it
        }
    }
}
