using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Garden.Actors.Container;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Process;
using Garden.Protocol.Journal;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>A journal holding records this daemon cannot apply (a handle an earlier build let in, a record whose values do
/// not parse, one the serializer could not read) quarantines those containers — broken, with the reason, destroyable —
/// and the daemon serves the rest. Planted straight into the journal while the host is down, then a new incarnation starts.</summary>
public sealed class QuarantineTests() : ActorTest("quarantine", "recovery-timeout = 10s")
{
    protected override TimeSpan AskTimeout => TimeSpan.FromSeconds(15);

    private void Create(string handle) => Ask<HostProtocol.ContainerCreated>(new HostProtocol.CreateContainer(
        new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, false)));

    /// <summary>Appends records to a journal as a persistent actor of that id would (after its existing ones).</summary>
    private void Plant(string persistenceId, params object[] records)
    {
        var planter = Sys.ActorOf(Props.Create(() => new Planter(persistenceId, records)));
        planter.Tell("plant", TestActor);
        ExpectMsg("planted", TimeSpan.FromSeconds(5));
        Sys.Stop(planter);
    }

    private sealed class Planter : ReceivePersistentActor
    {
        public Planter(string id, object[] records)
        {
            PersistenceId = id;
            Recover<object>(_ => { });
            Command<string>(_ =>
            {
                var replyTo = Sender;
                PersistAll(records, _ => { });
                DeferAsync("planted", m => replyTo.Tell(m));
            });
        }

        public override string PersistenceId { get; }
    }

    [Fact]
    public void Records_the_daemon_cannot_apply_quarantine_their_containers_and_the_rest_is_served()
    {
        Create("good");
        Create("unread");
        Create("unparsed");
        var events = CreateTestProbe();
        Sys.EventStream.Subscribe(events, typeof(EventsProtocol.ContainerEvent));
        Restart(whileDown: () =>
        {
            // what an earlier build journaled for `create --handle $'evil\n'` (then every start crashed on it)
            Plant("host", new ContainerRegistered { Handle = "evil\n", Incarnation = 100 });
            // a registration whose network does not parse, and a record this build cannot read at all
            Plant("host", new ContainerRegistered { Handle = "badnet", Incarnation = 101, Network = new NetworkRecord { Subnet = "nonsense", Address = "x" } },
                new UnreadableRecord { Manifest = "zz", Reason = "unknown journal manifest \"zz\"" });
            Plant(HostState.PersistenceIdOf("unread", 2), new UnreadableRecord { Manifest = "zz", Reason = "unknown journal manifest \"zz\"" });
            Plant(HostState.PersistenceIdOf("unparsed", 3), new NetOutAdded { Rules = { new NetOutRuleRecord { Protocol = 1, Networks = { "not-a-range" } } } });
        });

        // serving: the healthy container as before, the others broken with the reason
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("good")).State);
        Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("good", new ProcessSpec("p1", "/bin/true", [], [], "", "", [], null), Detach: true));
        Assert.Equal(["badnet", "evil\n", "good", "unparsed", "unread"], List());
        var published = new Dictionary<string, string>();
        while (published.Count < 4)
        {
            var e = events.ExpectMsg<EventsProtocol.ContainerEvent>(TimeSpan.FromSeconds(5));
            if (e.Kind == EventsProtocol.ContainerEvent.Broken) published[e.Handle] = e.Detail;
        }
        void IsBroken(string handle, string why)
        {
            var info = Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(handle));
            Assert.Equal(ContainerLifecycle.Broken, info.State);
            Assert.Contains(info.Events, e => e.Contains(why) && e.EndsWith("destroy it"));
            Assert.Contains(why, published[handle]);
        }
        IsBroken("evil\n", "handle \"evil\\n\" may hold only letters");
        IsBroken("badnet", "host journal record");
        IsBroken("unread", "unknown journal manifest \"zz\"");
        IsBroken("unparsed", "(NetOutAdded) cannot be applied");
        Assert.Equal(ErrorKind.FailedPrecondition,
            Error(new ContainerProtocol.RunProcess("unread", new ProcessSpec("", "/bin/true", [], [], "", "", [], null), false)).Kind);
        Assert.DoesNotContain(Calls.All, c => c.Names("evil")); // nothing of a bad name reaches the kernel

        // a second restart finds the same records and adds nothing: broken stays broken, without a second note
        Restart(whileDown: () => { });
        Assert.Single(Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("unread")).Events, e => e.Contains("unknown journal manifest"));

        // each can be destroyed, and stays gone
        foreach (var h in new[] { "evil\n", "badnet", "unread", "unparsed" })
            Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer(h));
        AwaitAssert(() => Assert.Equal(["good"], List()), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(Calls.All, c => c.Names("evil"));
        Assert.Contains(new Call.Deleted("unread"), Calls.All);
        Restart(whileDown: () => { });
        Assert.Equal(["good"], List());
        Assert.Equal(ErrorKind.NotFound, Error(new ContainerProtocol.GetInfo("evil\n")).Kind);
    }

    [Fact]
    public void A_bad_handle_or_process_id_is_refused_as_invalid_at_every_entry_and_the_container_keeps_serving()
    {
        var create = Error(new HostProtocol.CreateContainer(new ContainerSpec("evil\n", "", [], ImmutableDictionary<string, string>.Empty, false)));
        Assert.Equal(ErrorKind.InvalidArgument, create.Kind);
        Assert.Contains("handle: \"evil\\n\"", create.Message);
        Create("ok");
        var spec = new ProcessSpec("evil\n", "/bin/true", [], [], "", "", [], null);
        Assert.Equal(ErrorKind.InvalidArgument, Error(new ContainerProtocol.RunProcess("ok", spec, Detach: true)).Kind);
        Assert.Equal(ErrorKind.InvalidArgument, Error(new ContainerProtocol.AttachProcess("ok", "evil\n", 0)).Kind);
        Assert.Equal(ErrorKind.InvalidArgument, Error(new ContainerProtocol.SignalProcess("ok", "evil\n", 15)).Kind);
        Assert.Equal(ErrorKind.InvalidArgument, Error(new ContainerProtocol.SetProcessTty("ok", "evil\n", new TtySize(10, 10))).Kind);
        // the container actor did not crash: it still serves, with its state
        Ask<ProcessProtocol.ProcessStarted>(new ContainerProtocol.RunProcess("ok", spec with { Id = "fine" }, Detach: true));
        Assert.Equal(ContainerLifecycle.Active, Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo("ok")).State);
        Assert.Equal(1, Calls.Count(new Call.Ran("ok")));
    }
}
