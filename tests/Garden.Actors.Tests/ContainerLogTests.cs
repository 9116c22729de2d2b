using System.Collections.Immutable;
using Akka.Actor;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>A container's log lines carry its handle as their source, whoever writes them (the container's actor, its
/// processes' actors, the kernel work done for it), and name each step with its outcome.</summary>
public sealed class ContainerLogTests() : ActorTest("logs")
{
    private static HostProtocol.CreateContainer Create(string handle) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false));

    [Fact]
    public void Every_line_of_a_container_has_its_handle_as_source_and_each_step_its_outcome()
    {
        EventFilter.Info(start: "create starting", source: "container lg").ExpectOne(() =>
            EventFilter.Info(start: "rootfs (idmapped base) finished in ", source: "container lg").ExpectOne(() =>
                EventFilter.Info(start: "create finished in ", source: "container lg").ExpectOne(() =>
                    Host.Ask<HostProtocol.ContainerCreated>(Create("lg"), TimeSpan.FromSeconds(5)).GetAwaiter().GetResult())));
        EventFilter.Info(start: "process p1 starting: /bin/x", source: "container lg").ExpectOne(() =>
            Host.Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("lg", new ProcessSpec("p1", "/bin/x", [], [], "", "", [], null), true),
                TimeSpan.FromSeconds(5)).GetAwaiter().GetResult());

        Runtime.FailRunWith = "exec format error";
        EventFilter.Warning(start: "runtime failed after ", source: "container bad").ExpectOne(() =>
            EventFilter.Warning(start: "create failed after ", source: "container bad").ExpectOne(() =>
                Assert.ThrowsAny<Exception>(() => Host.Ask<HostProtocol.ContainerCreated>(Create("bad"), TimeSpan.FromSeconds(5)).GetAwaiter().GetResult())));
    }

    [Fact]
    public void The_host_logs_a_container_actor_that_stopped_unexpectedly_under_that_container()
    {
        Ask<HostProtocol.ContainerCreated>(Create("rs"));
        var child = Sys.ActorSelection(Host.Path / "rs~*");
        for (var i = 1; i <= 3; i++)
        {
            EventFilter.Warning(start: "container actor stopped unexpectedly; recovering it from its journal", source: "container rs")
                .ExpectOne(() => child.Tell(PoisonPill.Instance));
            Assert.Equal("rs", Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("rs")).Handle);
        }
        EventFilter.Error(start: "container actor stopped 3 times; leaving it down", source: "container rs")
            .ExpectOne(() => child.Tell(PoisonPill.Instance));
    }
}
