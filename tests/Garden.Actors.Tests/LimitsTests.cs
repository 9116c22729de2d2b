using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

public sealed class LimitsTests() : ActorTest("limits")
{
    private static HostProtocol.CreateContainer Create(string handle, Limits limits) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false, limits));

    private static readonly Limits Asked = new(MemoryBytes: 64UL << 20, CpuWeight: 512, CpuQuota: 0.5, Pids: 100, DiskBytes: 1UL << 30);

    [Fact]
    public void Create_applies_every_limit_and_info_shows_them()
    {
        Ask<HostProtocol.ContainerCreated>(Create("lim", Asked));
        Assert.Contains(new Call.DiskCreated("lim", 1073741824), Calls.All);
        Assert.Contains(new Call.CgroupApplied("lim"), Calls.All);
        Assert.Equal(Asked, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("lim")).Limits);
        Assert.Equal(Asked, Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits("lim")).Limits);
    }

    /// <summary>Info and CurrentLimits report one thing, the limits as given (0/null for none), not what the kernel reads
    /// back: here the fake kernel reads an unset CPU weight as its default, as cgroup v1's cpu.shares does.</summary>
    [Fact]
    public void Info_and_current_limits_both_report_the_limits_as_given_not_the_kernel_s()
    {
        var given = new Limits(MemoryBytes: 100_000_000, Pids: 100);
        Ask<HostProtocol.ContainerCreated>(Create("given", given));
        Assert.Equal(FakeCgroups.DefaultCpuWeight, Cgroups.Read("given").CpuWeight);
        Assert.Equal(given, Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits("given")).Limits);
        Assert.Equal(given, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("given")).Limits);
        var changed = Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits("given", new Limits(CpuWeight: 300))).Limits;
        Assert.Equal(given with { CpuWeight = 300 }, changed);
        Assert.Equal(changed, Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits("given")).Limits);
        Assert.Equal(changed, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("given")).Limits);
    }

    /// <summary>Garden's total scope: the image (the base rootfs, 3 MiB in the fakes) counts against the limit, so the
    /// container's own disk gets the rest, at create and on resize; exclusive (and unspecified) gets all of it.</summary>
    [Fact]
    public void A_total_disk_limit_takes_the_image_off_the_container_s_disk_an_exclusive_one_does_not()
    {
        var total = new Limits(DiskBytes: 1UL << 30, DiskScope: DiskScope.Total);
        Ask<HostProtocol.ContainerCreated>(Create("tot", total));
        Assert.Contains(new Call.DiskCreated("tot", (1UL << 30) - (3UL << 20)), Calls.All);
        var given = Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.GetLimits("tot")).Limits;
        Assert.Equal((total.DiskBytes, DiskScope.Total), (given.DiskBytes, given.DiskScope));   // the limit as given, not the room
        Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits("tot", new Limits(DiskBytes: 2UL << 30)));
        Assert.Contains(new Call.DiskResized("tot", (2UL << 30) - (3UL << 20)), Calls.All);

        Ask<HostProtocol.ContainerCreated>(Create("excl", new Limits(DiskBytes: 1UL << 30, DiskScope: DiskScope.Exclusive)));
        Assert.Contains(new Call.DiskCreated("excl", 1UL << 30), Calls.All);
        // total → exclusive on a live container: the same limit, the image's room given back; the other way would shrink
        // the disk, which a mounted ext4 cannot do
        Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits("tot", new Limits(DiskScope: DiskScope.Exclusive)));
        Assert.Contains(new Call.DiskResized("tot", 2UL << 30), Calls.All);
        var shrink = Error(new ContainerProtocol.SetLimits("excl", new Limits(DiskScope: DiskScope.Total)));
        Assert.Equal(ErrorKind.InvalidArgument, shrink.Kind);
        Assert.Contains("shrink", shrink.Message);
    }

    [Fact]
    public void A_total_disk_limit_the_image_leaves_too_little_of_is_refused_naming_disk_and_the_image()
    {
        var e = Error(Create("small", new Limits(DiskBytes: 10UL << 20, DiskScope: DiskScope.Total)));   // 7 MiB left < 8 MiB
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("disk", e.Message);
        Assert.Contains($"{3UL << 20} bytes", e.Message);
        Assert.DoesNotContain(Calls.All, c => c is Call.DiskCreated { Handle: "small" });
        Ask<HostProtocol.ContainerCreated>(Create("small-ok", new Limits(DiskBytes: 10UL << 20)));   // exclusive: fine
    }

    [Fact]
    public void The_scope_is_journaled_with_the_limits()
    {
        foreach (var scope in new DiskScope?[] { null, DiskScope.Exclusive, DiskScope.Total })
        {
            var l = new Limits(DiskBytes: 1UL << 30, DiskScope: scope);
            Assert.Equal(l, ContainerState.FromRecord(ContainerState.ToRecord(l)));
        }
    }

    [Theory]
    [InlineData(1UL, null, null, "memory")]
    [InlineData(null, 1024UL, null, "disk")]
    [InlineData(null, null, 0UL, "pids")]
    public void Out_of_range_limits_at_create_are_refused_naming_the_field(ulong? memory, ulong? disk, ulong? pids, string field)
    {
        var e = Error(Create("bad", new Limits(MemoryBytes: memory, DiskBytes: disk, Pids: pids)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith(field, e.Message);
        Assert.Empty(Calls.All);
    }

    [Fact]
    public void A_live_change_is_applied_and_journaled_as_given()
    {
        Ask<HostProtocol.ContainerCreated>(Create("live", Asked));
        var inForce = Ask<ContainerProtocol.LimitsInForce>(new ContainerProtocol.SetLimits("live", new Limits(MemoryBytes: 128UL << 20, DiskBytes: 2UL << 30))).Limits;
        Assert.Equal(Asked with { MemoryBytes = 128UL << 20, DiskBytes = 2UL << 30 }, inForce);
        Assert.Contains(new Call.DiskResized("live", 2147483648), Calls.All);
        Restart();
        Assert.Equal(inForce, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("live")).Limits);
    }

    [Fact]
    public void Shrinking_the_disk_is_refused_and_the_limits_stay()
    {
        Ask<HostProtocol.ContainerCreated>(Create("shrink", Asked));
        var e = Error(new ContainerProtocol.SetLimits("shrink", new Limits(DiskBytes: 512UL << 20)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("shrink", e.Message);
        Assert.Equal(Asked, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("shrink")).Limits);
        var none = Error(new ContainerProtocol.SetLimits("shrink", new Limits(Pids: 0)));
        Assert.Contains("pids", none.Message);
    }

    [Fact]
    public void A_disk_limit_cannot_be_added_after_create()
    {
        Ask<HostProtocol.ContainerCreated>(Create("nodisk", Limits.None));
        var e = Error(new ContainerProtocol.SetLimits("nodisk", new Limits(DiskBytes: 1UL << 30)));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("disk", e.Message);
        Assert.Equal(0, Disk.Count);
    }

    [Fact]
    public void An_oom_kill_becomes_an_event_that_survives_a_restart_and_the_watch_is_rearmed()
    {
        Ask<HostProtocol.ContainerCreated>(Create("oom", new Limits(MemoryBytes: 32UL << 20)));
        Assert.True(Oom.Kill("oom"));
        AwaitAssert(() => Assert.Contains(ContainerState.OutOfMemoryEvent, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("oom")).Events));
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("oom")).State);
        Restart();
        Assert.Contains(ContainerState.OutOfMemoryEvent, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("oom")).Events);
        Assert.True(Oom.Watching("oom"));
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("oom"));
        Assert.False(Oom.Watching("oom"));
    }

    [Fact]
    public void Destroy_releases_the_disk()
    {
        Ask<HostProtocol.ContainerCreated>(Create("gone", Asked));
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("gone"));
        AwaitAssert(() => Assert.Equal(0, Disk.Count)); // released just after the reply
    }

    [Fact]
    public void A_storm_of_oom_kills_is_one_event_with_a_count_journaled_at_most_once_per_interval()
    {
        Restart("oom-event-interval = 1s");
        Ask<HostProtocol.ContainerCreated>(Create("storm", new Limits(MemoryBytes: 32UL << 20)));
        var events = CreateTestProbe();
        Sys.EventStream.Subscribe(events, typeof(EventsProtocol.ContainerEvent));
        for (var i = 0; i < 500; i++) Oom.Kill("storm");
        // the first kill is reported at once; the 499 after it in one record when the interval ends
        var first = events.FishForMessage<EventsProtocol.ContainerEvent>(e => e.Kind == EventsProtocol.ContainerEvent.OutOfMemory);
        Assert.Equal("1 kill so far", first.Detail);
        var flush = ArmedTimer("storm", "OomFlush");
        Assert.Equal(TimeSpan.FromSeconds(1), flush.Delay); // the interval from the first report (no time has passed since)
        Clock.Advance(flush.Delay - TimeSpan.FromMilliseconds(1));
        Assert.True(flush.Armed);
        Clock.Advance(TimeSpan.FromMilliseconds(1));
        var second = events.FishForMessage<EventsProtocol.ContainerEvent>(e => e.Kind == EventsProtocol.ContainerEvent.OutOfMemory,
            TimeSpan.FromSeconds(3));
        Assert.Equal("500 kills so far", second.Detail);
        // nothing more to report: no timer, no record, no event
        Assert.Empty(ArmedTimers("storm", "OomFlush"));
        Clock.Advance(TimeSpan.FromMilliseconds(1500));
        events.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        var info = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("storm"));
        Assert.Single(info.Events, ContainerState.OutOfMemoryEvent);
        Assert.Equal(500UL, info.OomKills);
        Assert.NotNull(info.LastOom);
        Restart("oom-event-interval = 1s");
        info = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("storm"));
        Assert.Single(info.Events, ContainerState.OutOfMemoryEvent);
        Assert.Equal(500UL, info.OomKills);
    }

    [Fact]
    public void Records_of_earlier_builds_one_per_kill_fold_into_one_event_with_a_count()
    {
        var state = ContainerState.Empty("old");
        for (var i = 1; i <= 3; i++)
            state = state.Apply(new Garden.Protocol.Journal.OutOfMemory { AtUnixMs = 1000 * i }); // no count, no cgroup count
        Assert.Single(state.Events, ContainerState.OutOfMemoryEvent);
        Assert.Equal(3UL, state.OomKills);
        Assert.Equal(3000, state.LastOomUnixMs);
        // with the cgroup's own count, that count wins
        Assert.Equal(40UL, state.Apply(new Garden.Protocol.Journal.OutOfMemory { AtUnixMs = 4000, OomKills = 40, Kills = 2 }).OomKills);
        // a snapshot of an earlier build: one entry per kill
        var snapshot = new Garden.Protocol.Journal.ContainerSnapshot { Events = { "out of memory", "stopped", "out of memory" } };
        var folded = ContainerState.Empty("old").Apply(snapshot);
        Assert.Equal(["out of memory", "stopped"], folded.Events);
        Assert.Equal(2UL, folded.OomKills);
        var again = ContainerState.Empty("old").Apply(folded.ToSnapshot());
        Assert.Equal(folded.Events, again.Events);
        Assert.Equal(2UL, again.OomKills);
    }

    [Fact]
    public void Default_limits_fill_in_what_a_create_names_none_of()
    {
        Ask<HostProtocol.ContainerCreated>(Create("builtin", Limits.None));
        Assert.Equal(new Limits(Pids: 1024), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("builtin")).Limits); // the documented default
        Restart("default-limits { pids = 50, memory = 64M, disk = 32M }");
        Ask<HostProtocol.ContainerCreated>(Create("plain", Limits.None));
        Ask<HostProtocol.ContainerCreated>(Create("own", new Limits(Pids: 7, CpuWeight: 100)));
        Assert.Equal(new Limits(MemoryBytes: 64UL << 20, Pids: 50, DiskBytes: 32UL << 20), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("plain")).Limits);
        Assert.Equal(new Limits(MemoryBytes: 64UL << 20, CpuWeight: 100, Pids: 7, DiskBytes: 32UL << 20), Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("own")).Limits);
        Assert.Equal(new Garden.Linux.Cgroups.ResourceLimits(64UL << 20, FakeCgroups.DefaultCpuWeight, null, 50), Cgroups.Read("plain")); // in the kernel
        Assert.Equal(2, Disk.Count);
    }

    [Theory]
    [InlineData("pids = -1", "garden.default-limits.pids")]
    [InlineData("pids = lots", "garden.default-limits.pids")]
    [InlineData("pids = 99999999", "garden.default-limits.pids: 99999999 is out of range")]
    [InlineData("memory = 1M", "garden.default-limits.memory: 1 MiB is out of range")]
    [InlineData("memory = huge", "garden.default-limits.memory: \"huge\" is not a size")]
    [InlineData("disk = 1k", "garden.default-limits.disk")]
    public void Bad_default_limits_stop_the_start_naming_the_setting(string setting, string message)
    {
        var e = Assert.ThrowsAny<Akka.Configuration.ConfigurationException>(() => GardenSettings.Create(
            Akka.Configuration.ConfigurationFactory.ParseString($"garden {{ default-limits {{ {setting} }} }}")));
        Assert.Contains(message, e.Message);
    }
    [Theory]
    [InlineData("1M")]
    [InlineData("lots")]
    [InlineData("-32M")]
    [InlineData("2T")]
    public void A_bad_agent_memory_allowance_stops_the_start_naming_the_setting(string value)
    {
        var e = Assert.ThrowsAny<Akka.Configuration.ConfigurationException>(() => GardenSettings.Create(
            Akka.Configuration.ConfigurationFactory.ParseString($"garden {{ agent-memory-allowance = \"{value}\" }}")));
        Assert.Contains($"garden.agent-memory-allowance: \"{value}\" is not a size from 8M to 1T", e.Message);
    }

    [Fact]
    public void The_agent_memory_allowance_is_32_MiB_unless_set()
    {
        Assert.Equal(32UL << 20, GardenSettings.Create(Akka.Configuration.ConfigurationFactory.Empty).AgentMemoryAllowance);
        Assert.Equal(64UL << 20, GardenSettings.Create(
            Akka.Configuration.ConfigurationFactory.ParseString("garden { agent-memory-allowance = 64M }")).AgentMemoryAllowance);
    }
}
