using Akka.Actor;
using System.Collections.Immutable;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Peas on fakes: a Run with an image makes a second runtime container that joins the container's namespaces,
/// spawns through it, and releases it once the exit was seen; Destroy releases the peas before the container.</summary>
public sealed class PeaActorTests : ActorTest
{
    private readonly string _image;

    public PeaActorTests() : base("peas")
    {
        // outside the state dir (a pea's image may not be inside what only gardend uses)
        _image = TestPaths.NewTempDir("pea-actor-image");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing) Directory.Delete(_image, recursive: true);
    }

    private string Create(string handle) =>
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false))).Handle;

    private ProcessSpec Pea(string id, string? image = null) => new(id, "/bin/x", [], [], "", "", [], null, image ?? _image);

    private string PeaDir(string handle, string id) => Path.Combine(StateDir, "depot", handle, "peas", id);

    [Fact]
    public async Task A_pea_is_a_runtime_container_joining_its_containers_namespaces_and_is_released_after_its_exit()
    {
        var h = Create("pa");
        Agent.Behaviour = _ => ("out", 3);
        var started = await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Pea("p1"), Detach: false), TimeSpan.FromSeconds(5));
        var bundle = Runtime.Bundles["pa+pea+p1"];
        Assert.Equal("/proc/4242/ns/pid", bundle.Join!.Pid);   // the container's init (the fake's pid)
        Assert.Equal("/proc/4242/ns/net", bundle.Join.Network);
        Assert.Null(bundle.Resources);                           // it shares its container's limits
        Protocol.Agent.AgentEvent? last = null;
        while (await started.Stream!.ReadAsync(default) is { } e) last = e;
        Assert.Equal(3, last!.Exited.ExitCode);
        await started.Stream.DisposeAsync();
        await AwaitAssertAsync(() =>
        {
            Assert.Equal(1, Calls.Count(new Call.Deleted("pa+pea+p1")));
            Assert.DoesNotContain("pa+pea+p1", Runtime.Containers);
            Assert.False(Directory.Exists(PeaDir(h, "p1")));
        }, TimeSpan.FromSeconds(10));
        Assert.Contains(h, Runtime.Containers); // the container itself stays
    }

    [Fact]
    public async Task A_pea_with_limits_of_its_own_gets_a_cgroup_of_its_own_and_a_bad_image_is_refused_naming_it()
    {
        var h = Create("pl");
        Agent.Behaviour = _ => ("", 0);
        var own = Pea("own") with { PeaLimits = new PeaLimits(32 << 20, 0, 0) };
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, own, Detach: true), TimeSpan.FromSeconds(5));
        var bundle = Runtime.Bundles["pl+pea+own"];
        Assert.Equal(32UL << 20, bundle.Resources!.MemoryBytes);
        Assert.Null(bundle.ProcessCgroupDir);

        var missing = await Assert.ThrowsAsync<GardenException>(() =>
            Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Pea("bad", "/no/such/image"), Detach: false), TimeSpan.FromSeconds(5)));
        Assert.Equal(ErrorKind.InvalidArgument, missing.Kind);
        Assert.Contains("/no/such/image", missing.Message);
        var inState = await Assert.ThrowsAsync<GardenException>(() =>
            Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Pea("bad2", StateDir), Detach: false), TimeSpan.FromSeconds(5)));
        Assert.Contains("only gardend may use", inState.Message);
        Assert.Equal(0, Calls.Count(new Call.Ran("pl+pea+bad")));
        Assert.False(Directory.Exists(PeaDir(h, "bad")));
    }

    [Fact]
    public async Task Destroy_releases_the_containers_peas_before_the_container()
    {
        var h = Create("pd");
        Agent.Behaviour = _ => ("", 0);
        // the agent's List waits (the fake's processes exit at once: the pea's own exit watch would release it first)
        var listGate = new TaskCompletionSource();
        Agent.ListGate = listGate.Task;
        await Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess(h, Pea("p2"), Detach: true), TimeSpan.FromSeconds(5));
        Assert.Contains("pd+pea+p2", Runtime.Containers);
        var destroyed = AskAsync<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(h), TimeSpan.FromSeconds(20));
        await Task.Delay(300);
        listGate.SetResult();
        await destroyed;
        var calls = Calls.All.ToList();
        var peaDeleted = calls.IndexOf(new Call.Deleted("pd+pea+p2"));
        var containerKilled = calls.IndexOf(new Call.Killed("pd", 9));
        Assert.True(peaDeleted >= 0 && containerKilled > peaDeleted, string.Join("\n", calls));
        Assert.Empty(Runtime.Containers);
        // the depot goes with the release that follows the reply
        await AwaitAssertAsync(() => Assert.False(Directory.Exists(Path.Combine(StateDir, "depot", h))), TimeSpan.FromSeconds(10));
    }
}
