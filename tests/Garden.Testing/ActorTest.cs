using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Xunit;

namespace Garden.Testing;

/// <summary>The one harness of the actor tests (CONVENTIONS 15a): an ActorSystem with Garden's serializers, an in-memory
/// journal and snapshot store, and virtual time (<see cref="Clock"/>: timers fire only when the test advances it); the
/// fakes (<see cref="FakeEffects"/>) recording typed calls; the host actor on a temp state dir, restarted as a second
/// incarnation on the same journal (<see cref="Restart"/>); and Ask helpers that unwrap the host's answers and errors.</summary>
public abstract class ActorTest : Akka.TestKit.Xunit2.TestKit
{
    /// <summary>The journal and snapshot store in memory, for as long as the ActorSystem lives (a restarted host recovers
    /// from what its earlier incarnation wrote).</summary>
    public const string InMemoryJournal = """
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        """;

    /// <summary>The ActorSystem's config: <paramref name="persistence"/> (<see cref="InMemoryJournal"/> by default) over
    /// Garden's serializer bindings, with the virtual scheduler.</summary>
    public static Config SystemConfig(string? persistence = null) =>
        ConfigurationFactory.ParseString($"akka.scheduler.implementation = \"{typeof(VirtualScheduler).FullName}, {typeof(VirtualScheduler).Assembly.GetName().Name}\"")
            .WithFallback(ConfigurationFactory.ParseString(persistence ?? InMemoryJournal))
            .WithFallback(Garden.Protocol.Journal.ProtocolConfig.Default());

    private readonly string _settings;

    /// <param name="name">names the temp state dir (/tmp/garden-test-NAME-*).</param>
    /// <param name="settings">garden settings of every incarnation of the host (one per line), besides the state dir, the
    /// default rootfs (an empty dir) and stop/destroy grace of 1 s.</param>
    /// <param name="startHost">false: the test starts it (<see cref="StartHost"/>), after changing the fakes or settings.</param>
    /// <param name="persistence">the journal and snapshot store (see <see cref="InMemoryJournal"/>).</param>
    protected ActorTest(string name, string settings = "", bool startHost = true, string? persistence = null) : base(SystemConfig(persistence))
    {
        _settings = settings;
        StateDir = TestPaths.NewTempDir(name);
        // beside the state dir, not in it: a rootfs inside gardend's own paths is refused (RootDirectory)
        BaseRootfs = TestPaths.NewTempDir(name + "-base");
        // the test's own, not gardend's default under /run (which only a started gardend makes)
        MountDir = TestPaths.NewTempDir(name + "-mounts");
        if (startHost) StartHost();
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            Directory.Delete(StateDir, recursive: true);
            Directory.Delete(BaseRootfs, recursive: true);
            Directory.Delete(MountDir, recursive: true);
        }
    }

    /// <summary>The fakes behind the host's effects; <see cref="Calls"/> is their log.</summary>
    protected FakeEffects Fakes { get; } = new();
    protected CallLog Calls => Fakes.Calls;
    protected FakeOciRuntime Runtime => Fakes.Runtime;
    protected FakeRootfs Rootfs => Fakes.Rootfs;
    protected FakeCgroups Cgroups => Fakes.Cgroups;
    protected FakeAgent Agent => Fakes.Agent;
    protected FakeDiskQuota Disk => Fakes.Disk;
    protected FakeOomNotifier Oom => Fakes.Oom;
    protected FakeNetwork Network => Fakes.Network;
    protected FakeFirewall Firewall => Fakes.Firewall;
    protected FakeUserNamespaces UserNamespaces => Fakes.UserNamespaces;
    protected FakeHostResources Resources => Fakes.Resources;

    /// <summary>The state dir of the host (temp; removed after the test), and its default rootfs (an empty dir in it).</summary>
    protected string StateDir { get; }
    protected string BaseRootfs { get; }

    /// <summary>garden.mount-dir of the host (temp; removed after the test): where the warm pool's aliases go.</summary>
    protected string MountDir { get; }

    /// <summary>The ActorSystem's clock: advance it to fire timers (grace time, the exit watch, OOM reports, the recovery budget).</summary>
    protected VirtualScheduler Clock => (VirtualScheduler)Sys.Scheduler;

    /// <summary>The host actor of the current incarnation.</summary>
    protected IActorRef Host { get; private set; } = ActorRefs.Nobody;

    /// <summary>How long an Ask waits for the host's answer.</summary>
    protected virtual TimeSpan AskTimeout => TimeSpan.FromSeconds(5);

    /// <summary>The settings of an incarnation: the fixed ones (no warm pool, whatever gardend's default: a test sees the
    /// containers it made), the class's, then <paramref name="extra"/> (later wins).</summary>
    protected GardenSettings Settings(string extra = "") => GardenSettings.Create(ConfigurationFactory.ParseString($$"""
        garden {
          state-dir = "{{StateDir}}"
          default-rootfs = "{{BaseRootfs}}"
          mount-dir = "{{MountDir}}"
          stop-grace = 1s
          destroy-grace = 1s
          warm-pool.size = 0
          {{_settings}}
          {{extra}}
        }
        """));

    /// <summary>Starts an incarnation of the host (named "host": its containers are /user/host/HANDLE~N), by default
    /// waiting until it serves (it has reconciled every container of its journal).</summary>
    protected IActorRef StartHost(string extra = "", bool waitUntilServing = true)
    {
        // after a Restart the watcher may see the old incarnation's Terminated before /user has let go of its name
        AwaitAssert(() => Host = Sys.ActorOf(HostActor.Props(Settings(extra), Fakes.Effects(), Resources), "host"),
            TimeSpan.FromSeconds(3), TimeSpan.FromMilliseconds(10));
        if (waitUntilServing) AwaitServing();
        return Host;
    }

    /// <summary>Waits until the host answers Ping (while it recovers it answers Unavailable).</summary>
    protected void AwaitServing() => AwaitAssert(() => Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance, TimeSpan.FromSeconds(1)), AskTimeout * 2);

    /// <summary>The daemon dies (its actors stop without any cleanup; the fakes, like the kernel, keep what they hold) and a
    /// new incarnation starts on the same journal. <paramref name="whileDown"/> runs between the two.</summary>
    protected void Restart(string extra = "", bool waitUntilServing = true, Action? whileDown = null)
    {
        Watch(Host);
        Sys.Stop(Host);
        ExpectTerminated(Host);
        Unwatch(Host);
        whileDown?.Invoke();
        StartHost(extra, waitUntilServing);
    }

    /// <summary>Asks the host and waits for its answer of type <typeparamref name="T"/>; an error answer throws.</summary>
    protected T Ask<T>(object message, TimeSpan? timeout = null) => Host.Ask<T>(message, timeout ?? AskTimeout).GetAwaiter().GetResult();

    protected Task<T> AskAsync<T>(object message, TimeSpan? timeout = null) => Host.Ask<T>(message, timeout ?? AskTimeout);

    /// <summary>The error the host answers <paramref name="message"/> with (fails when it answers anything else).</summary>
    protected GardenException Error(object message) => Assert.IsType<GardenException>(
        Assert.ThrowsAny<Exception>(() => Host.Ask<object>(message, AskTimeout).GetAwaiter().GetResult()));

    /// <summary>True when the host knows the container (this asks the container: its grace timer restarts).</summary>
    protected bool Exists(string handle)
    {
        try
        {
            Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(handle));
            return true;
        }
        catch (GardenException e) when (e.Kind == ErrorKind.NotFound)
        {
            return false;
        }
    }

    /// <summary>The host's List with a property filter (answered by the host: no container is asked).</summary>
    protected string[] List(params (string Key, string Value)[] filter) =>
        [.. Ask<HostProtocol.ContainerList>(new HostProtocol.ListContainers(filter.ToImmutableDictionary(p => p.Key, p => p.Value))).Handles];

    /// <summary>Waits until a timer of the container's actor with a message of type <paramref name="messageType"/> is
    /// armed, and returns it (the only one).</summary>
    protected VirtualScheduler.Timer ArmedTimer(string handle, string messageType)
    {
        VirtualScheduler.Timer? found = null;
        AwaitAssert(() => found = Assert.Single(Clock.Armed(messageType), t => t.To($"{handle}~")), AskTimeout);
        return found!;
    }

    /// <summary>The timers of the container's actor with a message of type <paramref name="messageType"/> armed now.</summary>
    protected IReadOnlyList<VirtualScheduler.Timer> ArmedTimers(string handle, string messageType) =>
        [.. Clock.Armed(messageType).Where(t => t.To($"{handle}~"))];
}
