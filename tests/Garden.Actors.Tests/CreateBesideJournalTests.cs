using System.Collections.Immutable;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Protocol.Journal;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>A Create's kernel work starts while its CreateStarted is written (one durable write, the host's registration,
/// before it): proven on a journal that holds that write, and a daemon that dies before it lands.</summary>
public sealed class CreateBesideJournalTests() : ActorTest("beside", "destroy-containers-on-start = off", persistence: HeldJournal.Config)
{
    private static ContainerSpec Spec(string handle) => new(handle, "", [], ImmutableDictionary<string, string>.Empty, false);

    /// <summary>Asks for a Create of <paramref name="handle"/> (answered to the test actor) on a journal that holds its
    /// CreateStarted, and waits until that write is held; the caller releases it.</summary>
    private void CreateWithCreateStartedHeld(string handle)
    {
        HeldJournal.Hold<CreateStarted>();
        Host.Tell(new HostProtocol.CreateContainer(Spec(handle)), TestActor);
        AwaitCondition(() => HeldJournal.Waiting == 1);
    }

    [Fact]
    public void Runc_runs_while_CreateStarted_is_written_and_the_Create_is_answered_only_after_it()
    {
        try
        {
            CreateWithCreateStartedHeld("early");
            AwaitCondition(() => Runtime.Containers.Contains("early")); // made before its record is in
            ExpectNoMsg(TimeSpan.FromMilliseconds(300)); // but not answered
        }
        finally
        {
            HeldJournal.Release(write: true);
        }
        ExpectMsg<HostProtocol.ContainerCreated>(TimeSpan.FromSeconds(5));
        Restart();
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("early")).State);
    }

    [Fact]
    public void A_container_made_whose_CreateStarted_never_landed_is_undone_by_the_next_daemon()
    {
        try
        {
            CreateWithCreateStartedHeld("unwritten");
            // everything of it is made: runc, its rootfs, network and firewall (the host's registration named it first)
            AwaitCondition(() => Runtime.Containers.Contains("unwritten") && Firewall.Of("unwritten") is not null);
            Assert.Equal(1, Rootfs.MountedCount);
            // the daemon dies; the write it was waiting for never lands
            Restart(waitUntilServing: false, whileDown: () => HeldJournal.Release(write: false));
        }
        finally
        {
            HeldJournal.Release(write: false);
        }
        AwaitServing();
        AwaitAssert(() =>
        {
            Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("unwritten")).Kind);
            Assert.Empty(Runtime.Containers);
            Assert.Equal(0, Rootfs.MountedCount);
            Assert.Empty(Network.Handles);
            Assert.Null(Firewall.Of("unwritten"));
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(ContainerLifecycle.Active, CreateAndInfo("unwritten")); // the handle is free again
    }

    private ContainerLifecycle CreateAndInfo(string handle)
    {
        Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(Spec(handle)));
        return Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(handle)).State;
    }
}
