using Akka.Actor;
using Akka.Configuration;
using Garden.Protocol.Journal;
using Garden.Protocol.Remote;
using Google.Protobuf;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>With Akka.Remote loaded, its "Google.Protobuf.IMessage = proto" binding (CLR type names) sits beside ours;
/// every API message and journal record must still go through our serializers, on every system that loads both.</summary>
public sealed class RemoteBindingTests
{
    private const string Remote = "akka.actor.provider = remote\nakka.remote.dot-netty.tcp.hostname = \"127.0.0.1\"\nakka.remote.dot-netty.tcp.port = 0";

    [Fact]
    public void Every_api_message_and_journal_record_uses_our_serializer_when_akka_remote_is_loaded()
    {
        using var system = ActorSystem.Create("binding-test", ConfigurationFactory.ParseString(Remote).WithFallback(ProtocolConfig.Default()).WithFallback(ApiConfig.Default()));
        var wrong = ApiSerializer.Files.SelectMany(f => f.MessageTypes).Select(m => m.ClrType)
            .Where(t => system.Serialization.FindSerializerForType(t) is not ApiSerializer)
            .Concat(JournalSerializer.RecordTypes.Where(t => system.Serialization.FindSerializerForType(t) is not JournalSerializer))
            .Select(t => $"{t.Name} -> {system.Serialization.FindSerializerForType(t).GetType().Name}").ToList();
        Assert.Empty(wrong);
    }

    [Fact]
    public void Journal_records_an_earlier_remote_enabled_gardend_wrote_with_akkas_protobuf_serializer_stay_readable()
    {
        // Before the exact bindings, a gardend with Akka.Remote on wrote most records through Akka.Remote's "proto"
        // (id 2, manifest = CLR type name): measured, 51 of 90 journal and API types went that way.
        using var remote = ActorSystem.Create("writer", ConfigurationFactory.ParseString(Remote));
        var record = new PropertySet { Key = "k", Value = "v" };
        var proto = new Akka.Remote.Serialization.ProtobufSerializer((ExtendedActorSystem)remote);
        Assert.Equal(2, proto.Identifier);
        var bytes = proto.ToBinary(record);
        var manifest = "Garden.Protocol.Journal.PropertySet, Garden.Protocol"; // the CLR name it had then (now in Garden.Actors)

        using var local = ActorSystem.Create("reader", ProtocolConfig.Default()); // gardend's own system: no Akka.Remote
        Assert.Equal(record, local.Serialization.Deserialize(bytes, 2, manifest));
        Assert.IsType<JournalSerializer>(local.Serialization.FindSerializerFor(record)); // and writes only through ours
    }
}
