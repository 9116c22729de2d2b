using System.Text.Json;
using Akka.Actor;
using Akka.Configuration;
using Akka.Dispatch.SysMsg;
using Garden.Actors.Host;
using Garden.Protocol.Client;
using Garden.Protocol.Journal;
using Garden.Testing;
using Google.Protobuf;
using Microsoft.Data.Sqlite;
using Xunit;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>Attacks on the daemon itself: names that once bricked it, a journal it cannot read, a peer of its
/// Akka.Remote endpoint sending what no client should, and a container that grows its journal without bound. Each must
/// fail with gardend still serving (and each probe is shown to see the attack when it does work).</summary>
public sealed class DaemonEscapeTests
{
    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static async Task<JsonElement> Json(Gardend d, params string[] args)
    {
        var r = await d.CliAsync(["--json", .. args]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    /// <summary>Whatever a failed test left: every container of this daemon destroyed (started again if it is down), so
    /// nothing leaks into the host.</summary>
    private static async Task DestroyAll(Gardend d)
    {
        var list = await d.CliAsync("--json", "list");
        if (list.ExitCode != 0)
        {
            try { await d.StartAsync(); } catch (Exception) { return; }
            list = await d.CliAsync("--json", "list");
        }
        if (list.ExitCode != 0) return;
        foreach (var h in JsonDocument.Parse(list.Stdout).RootElement.GetProperty("handles").EnumerateArray())
            await d.CliAsync("destroy", h.GetString()!);
    }

    /// <summary>A daemon of the test's own that leaves nothing behind, whatever the test did to it.</summary>
    private sealed class OwnDaemon(Gardend d) : IAsyncDisposable
    {
        public Gardend D { get; } = d;

        public async ValueTask DisposeAsync()
        {
            await DestroyAll(D);
            await D.DisposeAsync();
        }
    }

    private static async Task<string> State(Gardend d, string handle) =>
        (await Json(d, "info", handle)).GetProperty("state").GetString()!;

    [InstallFact]
    public async Task A_handle_or_process_id_ending_in_a_newline_is_invalid_and_the_daemon_keeps_serving()
    {
        await using var own = new OwnDaemon(new Gardend());
        var d = own.D;
        await d.StartAsync();
        var bad = await d.CliAsync("create", "--handle", "evil\n");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("handle: \"evil\\n\" may hold only", bad.Stderr);

        var h = Unique("names");
        Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode);
        foreach (var args in new[] { new[] { "run", h, "--id", "job\n", "--", "true" }, ["attach", h, "job\n"], ["signal", h, "job\n", "TERM"] })
        {
            var r = await d.CliAsync(args);
            Assert.True(r.ExitCode != 0 && r.Stderr.Contains("process id: \"job\\n\""), $"{string.Join(' ', args)}: {r}");
        }
        // the container's actors did not crash: same container, still running processes
        Assert.Equal("active", await State(d, h));
        Assert.Equal("still here\n", (await d.CliAsync("run", h, "--", "echo", "still here")).Stdout);

        // a restart finds nothing bad in the journal
        await d.StopAsync();
        await d.StartAsync();
        Assert.Equal(h + "\n", (await d.CliAsync("list")).Stdout);
        await d.CliAsync("destroy", h);
    }

    /// <summary>Appends one record to a persistence id's journal in gardend's SQLite file (gardend stopped), written
    /// with the real serializer's bytes and manifest, as a build that accepted it would have.</summary>
    private static void Plant(string journalDb, string persistenceId, byte[] message, string manifest)
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = journalDb }.ToString());
        db.Open();
        using var next = db.CreateCommand();
        next.CommandText = "SELECT COALESCE(MAX(sequence_number), 0) + 1 FROM journal WHERE persistence_id = $p";
        next.Parameters.AddWithValue("$p", persistenceId);
        var seq = (long)next.ExecuteScalar()!;
        using var insert = db.CreateCommand();
        insert.CommandText = "INSERT INTO journal (created, deleted, persistence_id, sequence_number, message, manifest, identifier, writer_uuid) " +
                             "VALUES ($c, 0, $p, $s, $m, $man, $id, 'escape-test')";
        insert.Parameters.AddWithValue("$c", DateTime.UtcNow.Ticks);
        insert.Parameters.AddWithValue("$p", persistenceId);
        insert.Parameters.AddWithValue("$s", seq);
        insert.Parameters.AddWithValue("$m", message);
        insert.Parameters.AddWithValue("$man", manifest);
        insert.Parameters.AddWithValue("$id", JournalSerializer.Id);
        insert.ExecuteNonQuery();
    }

    private static string PersistenceIdOf(string journalDb, string handle)
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = journalDb, Mode = SqliteOpenMode.ReadOnly }.ToString());
        db.Open();
        using var q = db.CreateCommand();
        q.CommandText = "SELECT DISTINCT persistence_id FROM journal WHERE persistence_id LIKE $p";
        q.Parameters.AddWithValue("$p", $"container-{handle}-%");
        return (string)q.ExecuteScalar()!;
    }

    [InstallFact]
    public async Task A_journal_with_records_gardend_cannot_apply_quarantines_those_containers_and_gardend_serves_the_rest()
    {
        await using var own = new OwnDaemon(new Gardend());
        var d = own.D;
        await d.StartAsync();
        var good = Unique("good");
        var victim = Unique("victim");
        foreach (var h in new[] { good, victim }) Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode);
        await d.StopAsync();

        var journal = Path.Combine(d.StateDir, "journal.db");
        // what a build that accepted `create --handle $'evil\n'` journaled (and then crash-looped on at every start)
        Plant(journal, "host", new ContainerRegistered { Handle = "evil\n", Incarnation = 1000 }.ToByteArray(), "cr");
        // a record this build cannot read (a newer build's), and bytes that do not parse, in one container's journal
        Plant(journal, PersistenceIdOf(journal, victim), [1, 2, 3], "zz");
        Plant(journal, PersistenceIdOf(journal, victim), [0xff, 0xff, 0xff], "ps");

        var started = DateTime.UtcNow;
        await d.StartAsync(); // answers ping: not bricked
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(20));
        Assert.Equal(new[] { "evil\n", good, victim }.Order(StringComparer.Ordinal),
            (await Json(d, "list")).GetProperty("handles").EnumerateArray().Select(e => e.GetString()!).Order(StringComparer.Ordinal));
        Assert.Equal("active", await State(d, good));
        Assert.Equal("ok\n", (await d.CliAsync("run", good, "--", "echo", "ok")).Stdout);

        var evil = await Json(d, "info", "evil\n");
        Assert.Equal("broken", evil.GetProperty("state").GetString());
        Assert.Contains(evil.GetProperty("events").EnumerateArray(), e => e.GetString()!.Contains("is not") || e.GetString()!.Contains("may hold only"));
        var v = await Json(d, "info", victim);
        Assert.Equal("broken", v.GetProperty("state").GetString());
        Assert.Contains(v.GetProperty("events").EnumerateArray(), e => e.GetString()!.Contains("unknown journal manifest \"zz\""));

        // both can be destroyed, and stay gone after a restart; the healthy one keeps running throughout
        Assert.Equal(0, (await d.CliAsync("destroy", "evil\n")).ExitCode);
        Assert.Equal(0, (await d.CliAsync("destroy", victim)).ExitCode);
        Assert.Empty(Host.Leftovers(d, victim));
        await d.StopAsync();
        await d.StartAsync();
        Assert.Equal(good + "\n", (await d.CliAsync("list")).Stdout);
        Assert.Equal("ok\n", (await d.CliAsync("run", good, "--", "echo", "ok")).Stdout);
        await d.CliAsync("destroy", good);
    }

    /// <summary>A peer of the Akka.Remote endpoint with Akka's defaults (JSON, CLR type names): whatever it sends to
    /// whichever path — the internal DestroyContainer, PoisonPill, Kill, a Terminate system message — nothing happens,
    /// gardend serves on both transports and still stops on SIGTERM. Control: the same peer's API request does destroy.</summary>
    [InstallFact]
    public async Task A_raw_akka_peer_cannot_reach_the_containers_or_stop_an_actor()
    {
        var port = RemoteDaemonFixture.FreePort();
        await using var own = new OwnDaemon(new Gardend($"garden.akka-remote.address = \"127.0.0.1:{port}\""));
        var d = own.D;
        await d.StartAsync();
        var address = $"akka.tcp://garden@127.0.0.1:{port}";
        var target = Unique("target");
        var control = Unique("control");
        foreach (var h in new[] { target, control }) Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode);

        var peer = ActorSystem.Create("attacker", ConfigurationFactory.ParseString("""
            akka.actor.provider = remote
            akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
            akka.remote.dot-netty.tcp.port = 0
            akka.loglevel = WARNING
            akka.stdout-loglevel = OFF
            """).WithFallback(ProtocolConfig.Default()));
        try
        {
            var provider = ((ExtendedActorSystem)peer).Provider;
            IActorRef Direct(string path) => provider.ResolveActorRef($"{address}{path}");
            ActorSelection Selected(string path) => peer.ActorSelection($"{address}{path}");
            var destroy = new HostProtocol.DestroyContainer(target); // JSON, by CLR type name
            Assert.Equal(1, peer.Serialization.FindSerializerFor(destroy).Identifier);
            foreach (var path in new[] { "/user/containers", "/user/host", "/user", "/system" })
            {
                Direct(path).Tell(destroy);
                Selected(path).Tell(destroy);
                Direct(path).Tell(PoisonPill.Instance);
                Selected(path).Tell(PoisonPill.Instance);
                Direct(path).Tell(Kill.Instance);
                Direct(path).Tell(new ContainerReleased { Handle = target }); // a journal record: its serializer is refused too
                Direct(path).Tell("stop");
                ((IInternalActorRef)Direct(path)).SendSystemMessage(new Terminate());
            }
            await Task.Delay(TimeSpan.FromSeconds(3));

            Assert.Equal("active", await State(d, target));
            await using (var client = AkkaGardenClient.Connect(address, TimeSpan.FromSeconds(20)))
            {
                Assert.False(string.IsNullOrEmpty((await client.PingAsync()).Version));
                Assert.Contains(target, await client.ListAsync());
            }
            Assert.Equal(0, (await d.CliAsync("ping")).ExitCode);

            // control: what the probe sees when a peer's destroy does work (an API request, the one way in). A peer of
            // its own: the endpoint may have cut this one's association for what it sent.
            var honest = ActorSystem.Create("honest", ConfigurationFactory.ParseString("""
                akka.actor.provider = remote
                akka.remote.dot-netty.tcp.hostname = "127.0.0.1"
                akka.remote.dot-netty.tcp.port = 0
                """).WithFallback(AkkaGardenClient.TransportDefaults));
            object reply;
            try
            {
                reply = await honest.ActorSelection($"{address}/user/host").Ask<object>(
                    new Garden.Protocol.Api.DestroyRequest { Handle = control }, TimeSpan.FromSeconds(30));
            }
            finally { await honest.Terminate(); }
            Assert.IsType<Garden.Protocol.Api.DestroyResponse>(reply);
            Assert.NotEqual(0, (await d.CliAsync("info", control)).ExitCode);
        }
        finally
        {
            await peer.Terminate();
        }

        await d.CliAsync("destroy", target);
        var stop = d.StopAsync();
        Assert.Same(stop, await Task.WhenAny(stop, Task.Delay(TimeSpan.FromSeconds(30)))); // SIGTERM still ends it
    }

    [InstallFact]
    public async Task A_container_looping_on_oom_kills_journals_a_handful_of_records_and_info_shows_one_event_with_a_count()
    {
        await using var own = new OwnDaemon(new Gardend());
        var d = own.D;
        await d.StartAsync();
        var h = Unique("oomloop");
        Assert.Equal(0, (await d.CliAsync("create", "--handle", h, "--memory", "24M")).ExitCode);
        try
        {
            var loop = await d.CliAsync("run", h, "--detach", "--id", "hog", "--", "sh", "-c",
                "while :; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; done");
            Assert.True(loop.ExitCode == 0, loop.ToString());
            await Task.Delay(TimeSpan.FromSeconds(10));
            await d.CliAsync("signal", h, "hog", "KILL");

            var info = await Json(d, "info", h);
            var kills = ulong.Parse(info.GetProperty("oomKills").ToString());
            var records = OomRecords(Path.Combine(d.StateDir, "journal.db"), h);
            // the probe sees a storm: many kills (one record each would be as many records)
            Assert.True(kills >= 20, $"only {kills} OOM kills in 10 s: no storm to coalesce");
            Assert.InRange(records, 1, 4); // garden.oom-event-interval = 5s: at most one record per 5 s
            Assert.Single(info.GetProperty("events").EnumerateArray(), e => e.GetString() == "out of memory");
            Assert.True(long.Parse(info.GetProperty("lastOomUnixMs").ToString()) > DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds());
            var text = (await d.CliAsync("info", h)).Stdout; // a last record may have come since: at least as many
            var shown = System.Text.RegularExpressions.Regex.Match(text, @"out of memory \((\d+) kills, last at [0-9T:.Z-]+\)");
            Assert.True(shown.Success && ulong.Parse(shown.Groups[1].Value) >= kills, text);
            Assert.Equal("active", info.GetProperty("state").GetString());
        }
        finally { await d.CliAsync("destroy", h); }
    }

    private static long OomRecords(string journalDb, string handle)
    {
        using var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = journalDb, Mode = SqliteOpenMode.ReadOnly }.ToString());
        db.Open();
        using var q = db.CreateCommand();
        q.CommandText = "SELECT COUNT(*) FROM journal WHERE persistence_id LIKE $p AND manifest = 'om'";
        q.Parameters.AddWithValue("$p", $"container-{handle}-%");
        return (long)q.ExecuteScalar()!;
    }
}
