using System.Collections.Immutable;
using Akka.Actor;
using Akka.TestKit.Xunit2;
using Garden.Actors.Container;
using Garden.Actors.Host;
using static Garden.Actors.Host.HostProtocol;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>A container's log lines carry its handle as their source, whoever writes them (the container's actor, its
/// processes' actors, the kernel work done for it), and name each step with its outcome.</summary>
public sealed class ContainerLogTests : TestKit
{
    private readonly CallLog _log = new();
    private readonly string _stateDir = TestPaths.NewTempDir("logs");
    private readonly FakeOciRuntime _runtime;
    private readonly IActorRef _host;

    public ContainerLogTests() : base(Garden.Protocol.Journal.ProtocolConfig.Default().WithFallback(
        "akka.persistence.snapshot-store.plugin = \"akka.persistence.snapshot-store.inmem\""))
    {
        _runtime = new FakeOciRuntime(_log);
        Directory.CreateDirectory(Path.Combine(_stateDir, "base"));
        var settings = GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
            $"garden {{ state-dir = \"{_stateDir}\", default-rootfs = \"{_stateDir}/base\", destroy-grace = 1s }}"));
        var effects = new ContainerEffects(_runtime, new FakeRootfs(_log), new FakeCgroups(_log, _runtime), new FakeAgent(_log),
            new FakeDiskQuota(_log), new FakeOomNotifier(), new FakeNetwork(_log), new FakeFirewall(_log), new FakeUserNamespaces(_log));
        _host = Sys.ActorOf(HostActor.Props(settings, effects, new FakeHostResources()), "host");
        AwaitAssert(() => _host.Ask<Pong>(Ping.Instance, TimeSpan.FromSeconds(1)).GetAwaiter().GetResult(), TimeSpan.FromSeconds(5));
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Directory.Delete(_stateDir, recursive: true);
    }

    private static CreateContainer Create(string handle) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false));

    [Fact]
    public void Every_line_of_a_container_has_its_handle_as_source_and_each_step_its_outcome()
    {
        EventFilter.Info(start: "create starting", source: "container lg").ExpectOne(() =>
            EventFilter.Info(start: "rootfs (idmapped base) finished in ", source: "container lg").ExpectOne(() =>
                EventFilter.Info(start: "create finished in ", source: "container lg").ExpectOne(() =>
                    _host.Ask<ContainerCreated>(Create("lg"), TimeSpan.FromSeconds(5)).GetAwaiter().GetResult())));
        EventFilter.Info(start: "process p1 starting: /bin/x", source: "container lg").ExpectOne(() =>
            _host.Ask<Garden.Actors.Process.ProcessStarted>(new RunProcess("lg", new ProcessSpec("p1", "/bin/x", [], [], "", "", [], null), true),
                TimeSpan.FromSeconds(5)).GetAwaiter().GetResult());

        _runtime.FailRunWith = "exec format error";
        EventFilter.Warning(start: "runtime failed after ", source: "container bad").ExpectOne(() =>
            EventFilter.Warning(start: "create failed after ", source: "container bad").ExpectOne(() =>
                Assert.ThrowsAny<Exception>(() => _host.Ask<ContainerCreated>(Create("bad"), TimeSpan.FromSeconds(5)).GetAwaiter().GetResult())));
    }
}
