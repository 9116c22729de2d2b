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
public sealed class JournalFailureTests() : ActorTest("journal", persistence: TestJournalConfig)
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

    [Fact]
    public async Task A_failed_journal_write_is_an_error_to_the_caller_and_the_change_is_not_made()
    {
        await AwaitAssertAsync(() => Host.Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance, TimeSpan.FromSeconds(1)));
        await Host.Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(new ContainerSpec("j", "", [], ImmutableDictionary<string, string>.Empty.Add("k", "old"), false)), TimeSpan.FromSeconds(5));

        await WithJournalWrite(w => w.Fail(), async () =>
        {
            var e = await Assert.ThrowsAsync<GardenException>(() => Host.Ask<HostProtocol.Done>(new ContainerProtocol.SetProperty("j", "k", "new"), TimeSpan.FromSeconds(5)));
            Assert.Equal(ErrorKind.Internal, e.Kind);
            Assert.Contains("journal write failed", e.Message);
        });

        // the container actor stopped on the failure; the host recovered it from its journal: the old value holds
        await AwaitAssertAsync(async () =>
            Assert.Equal("old", (await Host.Ask<ContainerProtocol.PropertyValue>(new ContainerProtocol.GetProperty("j", "k"), TimeSpan.FromSeconds(1))).Value),
            TimeSpan.FromSeconds(5));
        await Host.Ask<HostProtocol.Done>(new ContainerProtocol.SetProperty("j", "k", "new"), TimeSpan.FromSeconds(5));
        Assert.Equal("new", (await Host.Ask<ContainerProtocol.PropertyValue>(new ContainerProtocol.GetProperty("j", "k"), TimeSpan.FromSeconds(5))).Value);
    }

    [Fact]
    public async Task A_create_whose_registration_cannot_be_journaled_fails_and_touches_nothing()
    {
        await AwaitAssertAsync(() => Host.Ask<HostProtocol.Pong>(HostProtocol.Ping.Instance, TimeSpan.FromSeconds(1)));
        await WithJournalWrite(w => w.Reject(), async () =>
        {
            await Assert.ThrowsAnyAsync<Exception>(() => Host.Ask<HostProtocol.ContainerCreated>(
                new HostProtocol.CreateContainer(new ContainerSpec("nope", "", [], ImmutableDictionary<string, string>.Empty, false)), TimeSpan.FromSeconds(3)));
        });
        Assert.Equal(0, Calls.Count<Call.Ran>());
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
        { new ContainerRegistered { Handle = "u", Incarnation = 2, IdRange = new IdRangeRecord { HostStart = 0x7000_0000, Size = 65536 } }, "cr" },
        { new CreateStarted { Spec = new ContainerSpecRecord { Handle = "u", UserNamespace = new UserNamespaceRecord {
            UidMap = { new IdMapRecord { ContainerId = 0, HostId = 4294967294, Size = 1 }, new IdMapRecord { ContainerId = 1, HostId = 1, Size = 4294967293 } },
            GidMap = { new IdMapRecord { ContainerId = 0, HostId = 4294967294, Size = 1 } } } } }, "c1" },
        { new HostSnapshot { NextIncarnation = 3, IdRanges = { ["u"] = new IdRangeRecord { HostStart = 0x7000_0000, Size = 65536 } } }, "hs" },
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
    public void An_unknown_manifest_or_bad_bytes_read_as_an_unreadable_record_naming_why()
    {
        var serializer = (Akka.Serialization.SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(PropertySet));
        var unknown = Assert.IsType<UnreadableRecord>(serializer.FromBinary([], "zz"));
        Assert.Equal("zz", unknown.Manifest);
        Assert.Contains("unknown journal manifest \"zz\"", unknown.Reason);
        var garbage = Assert.IsType<UnreadableRecord>(serializer.FromBinary([0xff, 0xff, 0xff], "ps"));
        Assert.Contains("does not parse", garbage.Reason);
        // never written: it has no manifest
        Assert.ThrowsAny<ArgumentException>(() => serializer.Manifest(unknown));
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

    [Fact]
    public void A_spec_journaled_before_user_namespaces_reads_as_one_without_and_the_host_releases_id_ranges()
    {
        // bytes an earlier build wrote: a spec with no field 12
        var earlier = new ContainerSpecRecord { Handle = "old", Rootfs = "/r", Privileged = false }.ToByteArray();
        var spec = ContainerState.FromRecord(ContainerSpecRecord.Parser.ParseFrom(earlier));
        Assert.Null(spec.UserNamespace);
        Assert.True(spec.EarlierHostRoot);
        var mapped = ContainerState.FromRecord(ContainerState.ToRecord(spec with { UserNamespace = Garden.Linux.UserNamespaces.IdMapping.PerContainer(0x7000_0000) }));
        Assert.Equal(Garden.Linux.UserNamespaces.IdMapping.PerContainer(0x7000_0000), mapped.UserNamespace);
        Assert.False(mapped.EarlierHostRoot);

        var s = HostState.Empty
            .Apply(new ContainerRegistered { Handle = "a", Incarnation = 1, IdRange = new IdRangeRecord { HostStart = 0x7000_0000, Size = 65536 } })
            .Apply(new ContainerRegistered { Handle = "b", Incarnation = 2 });
        Assert.Equal(new IdBlock(0x7000_0000, 65536), s.IdBlocks["a"]);
        Assert.False(s.IdBlocks.ContainsKey("b"));
        Assert.Equal(s.IdBlocks, HostState.Empty.Apply(s.ToSnapshot()).IdBlocks);
        Assert.Empty(s.Apply(new ContainerReleased { Handle = "a" }).IdBlocks);
    }
}

/// <summary>garden.user-namespace and garden.mount-dir: bad values stop gardend with the key named.</summary>
public sealed class UserNamespaceSettingsTests
{
    private static GardenSettings Settings(string garden) =>
        GardenSettings.Create(Akka.Configuration.ConfigurationFactory.ParseString($"garden {{ {garden} }}"));

    [Fact]
    public void Defaults_are_gardens_mapping_and_a_pool_below_2_to_the_31()
    {
        var s = Settings("");
        Assert.Equal(UserNamespaceMode.Garden, s.UserNamespace.Mapping);
        Assert.Equal(0x7000_0000u, s.UserNamespace.FirstHostId);
        Assert.True(s.UserNamespace.FirstHostId + (ulong)s.UserNamespace.Ranges * 65536 <= 1UL << 31);
        Assert.Equal(2, s.UserNamespace.Spares);
        Assert.Equal(0, Settings("user-namespace.spares = 0").UserNamespace.Spares);
        Assert.Equal("/run/garden-actors/mounts", s.MountDir);
        Assert.Equal("/run/garden-actors/mounts/h", s.MountDirFor("h"));
    }

    [Theory]
    [InlineData("user-namespace.mapping = shared", "garden.user-namespace.mapping")]
    [InlineData("user-namespace.per-container.first-host-id = 1000", "first-host-id")]
    [InlineData("user-namespace.per-container.first-host-id = 65537", "first-host-id")]
    [InlineData("user-namespace.per-container.ranges = 0", "ranges")]
    [InlineData("user-namespace.per-container.ranges = 70000", "run past 4292870143")]
    [InlineData("user-namespace.per-container.ranges = 36833", "own the containers' user namespaces")]
    [InlineData("user-namespace.spares = -1", "garden.user-namespace.spares")]
    [InlineData("user-namespace.spares = 65", "garden.user-namespace.spares")]
    [InlineData("mount-dir = \"relative/dir\"", "garden.mount-dir")]
    public void Bad_values_are_refused_naming_the_key(string setting, string named)
    {
        var e = Assert.Throws<Akka.Configuration.ConfigurationException>(() => Settings(setting));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void Per_container_pool_allocates_the_lowest_free_block_and_none_for_privileged()
    {
        var pool = new UserIdPool(new UserNamespaceSettings(UserNamespaceMode.PerContainer, 0x7000_0000, 2));
        var state = HostState.Empty;
        Assert.Equal((null, null), pool.Allocate(state, privileged: true));
        var (m1, b1) = pool.Allocate(state, false);
        Assert.Equal(new IdBlock(0x7000_0000, 65536), b1);
        Assert.Equal(0x7000_0000u, m1!.RootUid);
        state = state.Apply(new ContainerRegistered { Handle = "a", Incarnation = 1, IdRange = HostState.ToRecord(b1!.Value) });
        var (_, b2) = pool.Allocate(state, false);
        Assert.Equal(new IdBlock(0x7001_0000, 65536), b2);
        state = state.Apply(new ContainerRegistered { Handle = "b", Incarnation = 2, IdRange = HostState.ToRecord(b2!.Value) });
        Assert.Equal(ErrorKind.ResourceExhausted, Assert.Throws<GardenException>(() => pool.Allocate(state, false)).Kind);
        Assert.Equal((Garden.Linux.UserNamespaces.IdMapping.Garden, (IdBlock?)null),
            new UserIdPool(UserNamespaceSettings.Default).Allocate(state, false));
    }
}
