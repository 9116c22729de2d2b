using Akka.Actor;
using Akka.Hosting;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Host.Gateway;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Disk;
using Garden.Linux.Host;
using Garden.Linux.Images;
using Garden.Linux.Network;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Garden.Host;

/// <summary>The one composition root: the only place that creates concrete Linux types and wires them.</summary>
public static class Wiring
{
    /// <summary>The containers' seccomp program, compiled once for every agent to install; on a host without
    /// libseccomp.so.2 (a statically linked runc) only the guard, and runc compiles the profile for each container.</summary>
    private static AgentSeccompFilter CompiledSeccomp()
    {
        var filter = AgentSeccompFilter.Compile();
        if (filter.CompileError is { } why)
            Console.Error.WriteLine($"gardend: warning: runc compiles each container's seccomp profile (slower starts): {why}");
        return filter;
    }

    /// <summary>The Linux effects; with <paramref name="metrics"/>, the actors report to it and every agent call is timed.</summary>
    public static ContainerEffects WireLinux(GardenSettings settings, IGardenMetrics? metrics = null) => new(
        Runtime: new RuncRuntime(settings.RuncPath, settings.RuncRoot, CompiledSeccomp()),
        Rootfs: new OverlayRootfs(),
        Cgroups: CgroupManager.Create(settings.CgroupParent, agentMemoryAllowance: settings.AgentMemoryAllowance),
        Agents: metrics is null ? new AgentConnector(settings.AgentCallTimeout) : new Operations.TimedAgents(new AgentConnector(settings.AgentCallTimeout), metrics),
        Disk: new LoopDiskQuota(),
        Oom: OomNotifier.Create(settings.CgroupParent),
        Network: new IpPlumbing(),
        Firewall: new IptablesFirewall(settings.Network.Firewall with { ConntrackFloor = Garden.Linux.Host.HostFloors.ConntrackFor(settings.MaxContainers) }),
        // The holder of each container's user namespace is the agent binary (`garden-agent ns-holder`).
        UserNamespaces: new HolderUserNamespaces(settings.AgentBinary, spares: settings.UserNamespace.Spares),
        Depot: new Depot(),
        BaseSizes: new BaseRootfsSizes(),
        Metrics: metrics,
        Images: WireImages(settings),
        Host: new HostResources(),
        Hostnames: new UtsHostname());

    /// <summary>The image store under the state dir, over one HttpClient for registries; what a crash left half-done in
    /// its tmp/ goes now, before any pull, and layers beyond its limit that no living container holds.</summary>
    public static LayerStore WireImages(GardenSettings settings)
    {
        var store = new LayerStore(settings.ImageStoreDir, settings.ImageStoreMaxBytes,
            new ImageSources(ImageSources.Client(), settings.InsecureRegistries, settings.RegistryStallTimeout),
            live: handle => Directory.Exists(settings.DepotFor(handle)));
        foreach (var leftover in store.RemoveLeftovers()) Console.WriteLine($"gardend: image store: removed {leftover} (left by a crash)");
        store.CollectAsync().GetAwaiter().GetResult();   // refs of containers that are gone, and the size limit as configured now
        return store;
    }

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

    /// <summary>gardend: the generic host that owns, in this order, <see cref="GardendLifetime"/>, the actor system
    /// (Akka.Hosting), the Akka.Remote endpoint and the Garden HTTP server when configured, and Kestrel serving gRPC; it stops them in reverse on
    /// SIGTERM or when the actor system ends on its own. Call after <see cref="Preflight.Run"/>.</summary>
    /// <param name="notify">systemd's notification socket when gardend was started by a Type=notify unit.</param>
    /// <param name="json">JSON lines (<c>garden.log.format = json</c>), installed by Program before anything is logged; null for text.</param>
    public static WebApplication WireGardend(GardendSettings settings, Operations.SdNotify? notify = null, Operations.JsonLog? json = null)
    {
        // metrics only when a listener asks for them (garden.metrics.address): otherwise nothing is counted
        var metrics = settings.Metrics is null ? null : new Operations.PrometheusMetrics();
        var effects = WireLinux(settings.Garden, metrics);
        Operations.StartClock.Mark("linux effects");
        // No reload of appsettings.json on change (gardend's settings are HOCON, read once): with it the host watched its
        // content root, the working directory, recursively with inotify, every container's rootfs below it included
        // (3429 watches with 250 containers under a bench directory; / under systemd). Content root: gardend's own directory.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        WireLogging(builder.Logging, json);
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton(effects);
        builder.Services.AddSingleton<GardendLifetime>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GardendLifetime>());
        // what the JIT and the runtime freed goes back to the kernel (glibc keeps free pages of its arenas resident)
        builder.Services.AddHostedService(_ => new Operations.NativeHeapTrimmer(new GlibcHeap()));
        WireActors(builder.Services, settings, effects);
        if (settings.Remote is { } remote)
            builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<Remote.RemoteEndpoint>(sp, remote));
        if (settings.GardenHttp is { } gardenHttp)
            builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<GardenHttp.GardenHttpEndpoint>(sp, gardenHttp));
        if (settings.GardenDebug is { } debug)
            builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<GardenHttp.DebugVarsEndpoint>(sp, debug));
        if (metrics is not null)
        {
            builder.Services.AddSingleton(metrics);
            builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<Operations.MetricsEndpoint>(sp, settings.Metrics!));
        }
        if (notify is not null)
            builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<Operations.Readiness>(sp, notify));
        return WireGateway(builder, settings.Gateway, metrics);
    }

    /// <summary>One log: Microsoft.Extensions.Logging's console, one line per entry (or one JSON object per line, when
    /// <paramref name="json"/> is given). Akka's events come in through
    /// <see cref="AkkaLogger"/> (category Akka), filtered at the source by <c>akka.loglevel</c> (INFO by default);
    /// ASP.NET Core, Kestrel and gRPC say only warnings and errors.</summary>
    public static void WireLogging(ILoggingBuilder logging, Operations.JsonLog? json = null)
    {
        logging.ClearProviders();
        if (json is not null) logging.AddProvider(new Operations.JsonLoggerProvider(json));
        else logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        logging.SetMinimumLevel(LogLevel.Warning);
        logging.AddFilter(AkkaLogger.Category, LogLevel.Trace);
    }

    /// <summary>gardend's actor system (Akka.Hosting), local only: /user/containers, the HostActor, registered as
    /// <see cref="HostActor"/> in the ActorRegistry. Its journal is the one <see cref="GardendSettings.Akka"/> names.</summary>
    public static void WireActors(IServiceCollection services, GardendSettings settings, ContainerEffects effects) =>
        services.AddAkka(Remote.AkkaRemote.SystemName, (akka, sp) => akka
            .AddHocon(settings.Akka, HoconAddMode.Prepend)
            .ConfigureLoggers(l => l.ClearLoggers().AddLogger<AkkaLogger>())
            .WithActors((system, registry) =>
            {
                Operations.StartClock.Mark("actor system");
                sp.GetRequiredService<GardendLifetime>().ActorSystemStarted(system);
                Akka.Persistence.Sql.SqlPersistence.Get(system); // before any persistent actor starts
                Operations.StartClock.Mark("journal plugin");
                registry.Register<HostActor>(system.ActorOf(HostActor.Props(settings.Garden, effects, new HostResources()), "containers"));
            }));

    /// <summary>/user/host of the Akka.Remote endpoint (an ActorSystem of its own, see AkkaRemote.Hardening): the API,
    /// performed by the same core as gRPC (<see cref="ApiCore.IGardenApi"/>), on the actors of gardend's own local-only system.</summary>
    public static IActorRef WireRemote(ActorSystem endpoint, ApiCore.IGardenApi api) =>
        endpoint.ActorOf(Remote.ApiActor.Props(api), "host");

    /// <summary>gRPC on the Unix socket, after the actor system has started (Kestrel is the last hosted service).</summary>
    public static WebApplication WireGateway(WebApplicationBuilder builder, GatewaySettings gateway, IGardenMetrics? metrics = null)
    {
        builder.Services.AddSingleton(sp => new ApiCore.GatewayContext(
            sp.GetRequiredService<IReadOnlyActorRegistry>().Get<HostActor>(), gateway.AskTimeout, sp.GetRequiredService<ActorSystem>()));
        // the API core every front door adapts: gRPC here, Akka.Remote (RemoteEndpoint), Garden HTTP (GardenHttpEndpoint);
        // measured when there are metrics (the metrics' own reads and readiness's pings use the core unmeasured)
        builder.Services.AddSingleton(sp => new ApiCore.GardenApi(sp.GetRequiredService<ApiCore.GatewayContext>(),
            sp.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping));
        builder.Services.AddSingleton<ApiCore.IGardenApi>(sp => metrics is null
            ? sp.GetRequiredService<ApiCore.GardenApi>()
            : new ApiCore.MeteredGardenApi(sp.GetRequiredService<ApiCore.GardenApi>(), metrics));
        builder.Services.AddGrpc(o =>
        {
            o.MaxReceiveMessageSize = 16 * 1024 * 1024;
            o.EnableDetailedErrors = false;
            o.Interceptors.Add<UnexpectedErrors>();
        });
        // bigger receive buffers than Kestrel's 4 KiB blocks for gRPC's uploads (Gateway/ReceiveBlocks.cs)
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>>(new ReceiveBlocks());
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(gateway.Socket, l => l.Protocols = HttpProtocols.Http2);
            k.Limits.Http2.MaxStreamsPerConnection = 1000;
            k.Limits.Http2.InitialConnectionWindowSize = 4 * 1024 * 1024;
            k.Limits.Http2.InitialStreamWindowSize = 2 * 1024 * 1024;
        });
        var app = builder.Build();
        app.MapGrpcService<GardenService>();
        Operations.StartClock.Mark("host built");
        return app;
    }
}
