using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence.TestKit;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Linux.Host;
using Garden.Protocol.Journal;
using Garden.Testing;
using Google.Protobuf;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Journal write failures (Akka.Persistence.TestKit's TestJournal): the caller gets a clear error and nothing changes.</summary>
public sealed class JournalFailureTests : Akka.TestKit.Xunit2.TestKit
{
    private const string TestJournalConfig = """
        akka.persistence {
          journal {
            plugin = "akka.persistence.journal.test"
            test {
              class = "Akka.Persistence.TestKit.TestJournal, Akka.Persistence.TestKit"
              plugin-dispatcher = "akka.actor.default-dispatcher"
            }
          }
          snapshot-store {
            plugin = "akka.persistence.snapshot-store.test"
            test {
              class = "Akka.Persistence.TestKit.TestSnapshotStore, Akka.Persistence.TestKit"
              plugin-dispatcher = "akka.actor.default-dispatcher"
            }
          }
        }
        """;

    private ITestJournal Journal => TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null));

    private async Task WithJournalWrite(Func<JournalWriteBehavior, Task> behaviour, Func<Task> body)
    {
        await behaviour(Journal.OnWrite);
        try { await body(); }
        finally { await Journal.OnWrite.Pass(); }
    }

    private readonly CallLog _log = new();
    private readonly string _stateDir = TestPaths.NewTempDir("journal");
    private readonly IActorRef _host;

    public JournalFailureTests() : base(ProtocolConfig.Default().WithFallback(TestJournalConfig))
    {
        Directory.CreateDirectory(Path.Combine(_stateDir, "base"));
        var settings = GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString(
            $"garden {{ state-dir = \"{_stateDir}\", default-rootfs = \"{_stateDir}/base\" }}"));
        var effects = new ContainerEffects(new FakeOciRuntime(_log), new FakeRootfs(_log), new FakeCgroups(_log), new FakeAgent(_log), new FakeDiskQuota(_log), new FakeOomNotifier(), new FakeNetwork(_log), new FakeFirewall(_log), new FakeUserNamespaces(_log));
        _host = Sys.ActorOf(HostActor.Props(settings, effects, new FakeHostResources()), "host");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Directory.Delete(_stateDir, recursive: true);
    }

    [Fact]
    public async Task A_failed_journal_write_is_an_error_to_the_caller_and_the_change_is_not_made()
    {
        await AwaitAssertAsync(() => _host.Ask<Pong>(Ping.Instance, TimeSpan.FromSeconds(1)));
        await _host.Ask<ContainerCreated>(new CreateContainer(new ContainerSpec("j", "", [], ImmutableDictionary<string, string>.Empty.Add("k", "old"), false)), TimeSpan.FromSeconds(5));

        await WithJournalWrite(w => w.Fail(), async () =>
        {
            var e = await Assert.ThrowsAsync<GardenException>(() => _host.Ask<Done>(new SetProperty("j", "k", "new"), TimeSpan.FromSeconds(5)));
            Assert.Equal(ErrorKind.Internal, e.Kind);
            Assert.Contains("journal write failed", e.Message);
        });

        // the container actor stopped on the failure; the host recovered it from its journal: the old value holds
        await AwaitAssertAsync(async () =>
            Assert.Equal("old", (await _host.Ask<PropertyValue>(new GetProperty("j", "k"), TimeSpan.FromSeconds(1))).Value),
            TimeSpan.FromSeconds(5));
        await _host.Ask<Done>(new SetProperty("j", "k", "new"), TimeSpan.FromSeconds(5));
        Assert.Equal("new", (await _host.Ask<PropertyValue>(new GetProperty("j", "k"), TimeSpan.FromSeconds(5))).Value);
    }

    [Fact]
    public async Task A_create_whose_registration_cannot_be_journaled_fails_and_touches_nothing()
    {
        await AwaitAssertAsync(() => _host.Ask<Pong>(Ping.Instance, TimeSpan.FromSeconds(1)));
        await WithJournalWrite(w => w.Reject(), async () =>
        {
            await Assert.ThrowsAnyAsync<Exception>(() => _host.Ask<ContainerCreated>(
                new CreateContainer(new ContainerSpec("nope", "", [], ImmutableDictionary<string, string>.Empty, false)), TimeSpan.FromSeconds(3)));
        });
        Assert.Equal(0, _log.Count("run "));
    }
}

/// <summary>The journal's bytes: every event and snapshot round-trips, under a manifest that never changes.</summary>
public sealed class JournalSerializerTests : Akka.TestKit.Xunit2.TestKit
{
    public JournalSerializerTests() : base(ProtocolConfig.Default()) { }

    public static TheoryData<IJournalRecord, string> Records() => new()
    {
        { new DaemonStarted { Version = "1.2.3", StartedUnixMs = 42 }, "ds" },
        { new ContainerRegistered { Handle = "h", Incarnation = 7 }, "cr" },
        { new ContainerReleased { Handle = "h" }, "cx" },
        { new RecoveryFinished { DaemonVersion = "v", Reattached = { "a" }, Broken = { "b" }, Released = { "c" }, DurationMs = 5 }, "rf" },
        { new HostSnapshot { NextIncarnation = 3, Containers = { ["h"] = 2 }, Versions = { "a" } }, "hs" },
        { new CreateStarted { Spec = new ContainerSpecRecord { Handle = "h", Rootfs = "/r", Env = { "A=1" }, Properties = { ["k"] = "v" } } }, "c1" },
        { new CreateCompleted { RootfsMount = "/m" }, "c2" },
        { new PropertySet { Key = "k", Value = "v" }, "ps" },
        { new PropertyRemoved { Key = "k" }, "pr" },
        { new LifecycleChanged { State = Lifecycle.Broken, Note = "n" }, "lc" },
        { new Reconciled { Healthy = true, Finding = "f", DaemonVersion = "v", AtUnixMs = 1 }, "rc" },
        { new ContainerSnapshot { Lifecycle = Lifecycle.Stopped, Events = { "stopped" } }, "cs" },
        { new ContainerRegistered { Handle = "n", Incarnation = 1, Network = new NetworkRecord { Subnet = "10.254.0.0/30", Address = "10.254.0.2" }, Ports = { 61001 } }, "cr" },
        { new PortsReserved { Handle = "n", Ports = { 61002 } }, "pp" },
        { new PortsReturned { Handle = "n", Ports = { 61002 } }, "pq" },
        { new NetInAdded { Mapping = new PortMappingRecord { HostPort = 61001, ContainerPort = 8080 } }, "ni" },
        { new NetOutAdded { Rules = { new NetOutRuleRecord { Protocol = 3, IcmpType = 8, IcmpCode = 0, Log = true }, new NetOutRuleRecord { Protocol = 1, Networks = { "10.0.0.0-10.0.0.255" }, Ports = { "80-80" } } } }, "no" },
    };

    [Theory]
    [MemberData(nameof(Records))]
    public void Every_record_round_trips_under_its_fixed_manifest(IJournalRecord record, string manifest)
    {
        var serializer = Sys.Serialization.FindSerializerFor(record);
        Assert.IsType<JournalSerializer>(serializer);
        Assert.Equal(JournalSerializer.Id, serializer.Identifier);
        var withManifest = (Akka.Serialization.SerializerWithStringManifest)serializer;
        Assert.Equal(manifest, withManifest.Manifest(record));
        var back = withManifest.FromBinary(serializer.ToBinary(record), manifest);
        Assert.Equal(record, back);
        Assert.DoesNotContain("Garden", System.Text.Encoding.UTF8.GetString(serializer.ToBinary(record))); // no CLR names
    }

    [Fact]
    public void An_unknown_manifest_names_itself()
    {
        var serializer = (Akka.Serialization.SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(PropertySet));
        var e = Assert.ThrowsAny<Exception>(() => serializer.FromBinary([], "zz"));
        Assert.Contains("zz", e.Message);
    }

    [Fact]
    public void Host_state_folds_registrations_and_versions()
    {
        var s = HostState.Empty
            .Apply(new DaemonStarted { Version = "0.1.0" })
            .Apply(new ContainerRegistered { Handle = "a", Incarnation = 1 })
            .Apply(new ContainerRegistered { Handle = "b", Incarnation = 2 })
            .Apply(new ContainerReleased { Handle = "a" })
            .Apply(new DaemonStarted { Version = "0.2.0" });
        Assert.Equal(["0.1.0", "0.2.0"], s.Versions);
        Assert.Equal(3, s.NextIncarnation);
        Assert.Equal(new Dictionary<string, long> { ["b"] = 2 }, s.Containers);
        var again = HostState.Empty.Apply(s.ToSnapshot());
        Assert.Equal(s.Containers, again.Containers);
        Assert.Equal(s.Versions, again.Versions);
    }
}
