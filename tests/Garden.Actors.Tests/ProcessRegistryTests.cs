using Akka.TestKit.Xunit2;
using Garden.Actors.Container;
using Garden.Protocol.Agent;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The container's process bookkeeping as plain state: when an actor may stop, one List at a time, what a List means.</summary>
public sealed class ProcessRegistryTests : TestKit
{
    [Fact]
    public void An_idle_actor_is_stopped_only_when_it_has_taken_every_message_sent_to_it()
    {
        var r = new ProcessRegistry();
        var probe = CreateTestProbe();
        r.Add("p", probe.Ref);
        Assert.True(r.Send("p", "start", probe.Ref));
        Assert.True(r.Send("p", "attach", probe.Ref));
        Assert.False(r.Idle("p", probe.Ref, handled: 1, exitKnown: true)); // the attach is on its way
        Assert.NotNull(r.Find("p"));
        Assert.True(r.Idle("p", probe.Ref, handled: 2, exitKnown: true));
        Assert.Null(r.Find("p"));
        Assert.False(r.Send("p", "late", probe.Ref));
        // an older actor of the same id does not stop the new one
        var newer = CreateTestProbe();
        r.Add("p", newer.Ref);
        Assert.False(r.Idle("p", probe.Ref, handled: 0, exitKnown: true));
        Assert.NotNull(r.Find("p"));
        Assert.NotEqual(r.NameFor("p"), r.NameFor("p"));
    }

    [Fact]
    public void A_failed_actor_is_forgotten_but_a_newer_one_of_the_same_process_is_kept()
    {
        var r = new ProcessRegistry();
        var failed = CreateTestProbe();
        r.Add("p", failed.Ref);
        r.Forget(failed.Ref);
        Assert.Null(r.Find("p")); // the next request for it gets a new actor
        var newer = CreateTestProbe();
        r.Add("p", newer.Ref);
        r.Forget(failed.Ref); // an older actor's late end
        Assert.Equal(newer.Ref, r.Find("p"));
    }

    [Fact]
    public void One_list_at_a_time_and_what_it_finds()
    {
        var r = new ProcessRegistry();
        Assert.Null(r.StartList()); // nothing to watch
        r.Watch("running");
        r.Watch("exited");
        r.Watch("forgotten");
        var asked = r.StartList()!;
        Assert.Equal(3, asked.Count);
        Assert.Null(r.StartList()); // still out
        r.Watch("late"); // spawned while the List was out: not asked, not judged
        var found = r.Listed(
        [
            new ProcessEntry { Id = "running", Exited = false },
            new ProcessEntry { Id = "exited", Exited = true, Exit = new Exited { ExitCode = 4 } },
        ], asked);
        Assert.Equal(2, found.Count);
        Assert.Equal(4, found.Single(f => f.Id == "exited").Exit!.ExitCode);
        Assert.True(found.Single(f => f.Id == "forgotten").Gone);
        Assert.True(r.IsPending("running"));
        Assert.True(r.IsPending("late"));
        Assert.False(r.IsPending("exited"));
        Assert.Equal(2, r.Pending);

        // a failed List changes nothing but lets the next one go
        Assert.NotNull(asked = r.StartList()!);
        Assert.Empty(r.Listed(null, asked));
        Assert.Equal(2, r.Pending);
        Assert.NotNull(r.StartList());
    }

    [Fact]
    public void An_answer_shows_the_exit_of_a_process_watched_after_it_went_out_but_not_its_absence()
    {
        var r = new ProcessRegistry();
        r.Watch("a");
        var asked = r.StartList()!;
        r.Watch("b"); // spawned while the wait is out: the agent reports its exit with that answer, so it is taken
        r.Watch("c"); // spawned after the agent made the answer: missing from it, yet not gone
        var found = r.Listed([new ProcessEntry { Id = "a", Exited = false }, new ProcessEntry { Id = "b", Exited = true, Exit = new Exited { ExitCode = 4 } }], asked);
        Assert.Equal(("b", (int?)4), found.Select(f => (f.Id, f.Exit?.ExitCode)).Single());
        Assert.True(r.IsPending("a"));
        Assert.True(r.IsPending("c"));
        Assert.False(r.ListInFlight);
    }

    [Fact]
    public void An_agent_that_refuses_the_wait_or_fails_it_three_times_in_a_row_is_polled()
    {
        var r = new ProcessRegistry();
        r.WaitEnded(answered: false, refused: false);
        r.WaitEnded(answered: false, refused: false);
        r.WaitEnded(answered: true, refused: false); // answered: the count starts again
        r.WaitEnded(answered: false, refused: false);
        r.WaitEnded(answered: false, refused: false);
        Assert.False(r.WaitsRefused);
        r.WaitEnded(answered: false, refused: false);
        Assert.True(r.WaitsRefused);
        var old = new ProcessRegistry();
        old.WaitEnded(answered: false, refused: true);
        Assert.True(old.WaitsRefused);
    }
}
