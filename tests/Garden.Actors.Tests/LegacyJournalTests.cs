using Akka.Actor;
using Garden.Protocol.Journal;
using Google.Protobuf;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Records an earlier remote-enabled gardend wrote through Akka.Remote's protobuf serializer (id 2) carry a CLR
/// type name from when the journal lived in the Garden.Protocol assembly. gardend reads them by that name among the
/// journal's records only (LegacyProtoJournalSerializer): every record stays readable, and a stored name cannot make it
/// build anything else.</summary>
public sealed class LegacyJournalTests : IDisposable
{
    private readonly ActorSystem _system = ActorSystem.Create("legacy-journal", ProtocolConfig.Default()); // gardend's: no Akka.Remote

    public void Dispose() => _system.Dispose();

    public static TheoryData<string> RecordTypes() => [.. JournalSerializer.RecordTypes.Select(t => t.FullName!)];

    [Theory]
    [MemberData(nameof(RecordTypes))]
    public void Every_record_under_its_old_clr_name_is_read(string fullName)
    {
        var type = JournalSerializer.RecordTypes.Single(t => t.FullName == fullName);
        var record = (IMessage)Activator.CreateInstance(type)!;
        var read = _system.Serialization.Deserialize(record.ToByteArray(), LegacyProtoJournalSerializer.Id, $"{fullName}, Garden.Protocol");
        Assert.Equal(record, read);
    }

    [Fact]
    public void A_stored_name_of_another_protobuf_type_is_an_unreadable_record_not_that_type()
    {
        // a crafted journal row: id 2 and the name of a protobuf message that is no journal record (an agent request)
        var bytes = new Garden.Protocol.Agent.SpawnRequest { Id = "p", Path = "/bin/sh" }.ToByteArray();
        var read = _system.Serialization.Deserialize(bytes, LegacyProtoJournalSerializer.Id, "Garden.Protocol.Agent.SpawnRequest, Garden.Protocol");
        var unreadable = Assert.IsType<UnreadableRecord>(read);
        Assert.Contains("Garden.Protocol.Agent.SpawnRequest", unreadable.Reason);
    }

    [Fact]
    public void A_legacy_record_that_does_not_parse_is_an_unreadable_record()
    {
        var read = _system.Serialization.Deserialize([0xff, 0xff, 0xff], LegacyProtoJournalSerializer.Id, "Garden.Protocol.Journal.PropertySet, Garden.Protocol");
        Assert.Contains("does not parse", Assert.IsType<UnreadableRecord>(read).Reason);
    }

    [Fact]
    public void Nothing_is_written_through_the_legacy_reader()
    {
        Assert.IsType<JournalSerializer>(_system.Serialization.FindSerializerFor(new PropertySet { Key = "k" }));
        var legacy = new LegacyProtoJournalSerializer((ExtendedActorSystem)_system);
        Assert.Throws<NotSupportedException>(() => { legacy.ToBinary(new PropertySet { Key = "k" }); });
    }
}
