using Akka.Actor;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Host.Gateway;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Disk;
using Garden.Linux.Host;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Garden.Host;

/// <summary>The one composition root: the only place that creates concrete Linux types and wires them.</summary>
public static class Wiring
{
    public static ContainerEffects WireLinux(GardenSettings settings) => new(
        Runtime: new RuncRuntime(settings.RuncPath, settings.RuncRoot),
        Rootfs: new OverlayRootfs(),
        Cgroups: CgroupManager.Create(settings.CgroupParent),
        Agents: new AgentConnector(settings.AgentCallTimeout),
        Disk: new LoopDiskQuota(),
        Oom: OomNotifier.Create(settings.CgroupParent),
        Network: new IpPlumbing(),
        Firewall: new IptablesFirewall(settings.Network.Firewall),
        // The holder of each container's user namespace is the agent binary (`garden-agent ns-holder`).
        UserNamespaces: new HolderUserNamespaces(settings.AgentBinary));

    /// <summary>At an orderly stop, once the actors have stopped: the firewall's shared chains, the jumps into them and the
    /// IPv6 guard, which stay while gardend runs, go when no container has rules left. Containers outlive gardend: when one
    /// has, everything stays. A failure only delays the removal to the next start's prune.</summary>
    public static async Task ReleaseAtStopAsync(GardenSettings settings, ContainerEffects effects)
    {
        if (!settings.Network.Enabled) return;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            if (await effects.Firewall.ReleaseSharedAsync(cts.Token))
                Console.WriteLine("gardend: no container has firewall rules left: removed the shared chains and the IPv6 guard");
        }
        catch (Exception e) // the process is ending: say what stayed, and let it end
        {
            Console.Error.WriteLine($"gardend: the shared firewall chains stay until the next start: {e.Message}");
        }
    }

    public static IActorRef WireActors(ActorSystem system, GardenSettings settings, ContainerEffects effects) =>
        system.ActorOf(HostActor.Props(settings, effects, new HostResources()), "containers");

    /// <summary>/user/host of the Akka.Remote endpoint (an ActorSystem of its own, see AkkaRemote.Hardening): the API,
    /// performed by the same GardenService as gRPC, on the actors of gardend's own local-only system.</summary>
    public static IActorRef WireRemote(ActorSystem endpoint, GatewayContext context) =>
        endpoint.ActorOf(Remote.ApiActor.Props(new GardenService(context)), "host");

    public static WebApplication WireGateway(WebApplicationBuilder builder, string socketPath, GatewayContext context)
    {
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(context);
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 16 * 1024 * 1024;
            o.EnableDetailedErrors = false;
            o.Interceptors.Add<UnexpectedErrors>();
        });
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(socketPath, l => l.Protocols = HttpProtocols.Http2);
            k.Limits.Http2.MaxStreamsPerConnection = 1000;
            k.Limits.Http2.InitialConnectionWindowSize = 4 * 1024 * 1024;
            k.Limits.Http2.InitialStreamWindowSize = 2 * 1024 * 1024;
        });
        var app = builder.Build();
        app.MapGrpcService<GardenService>();
        return app;
    }
}
