using Akka.Actor;
using Akka.Serialization;
using Google.Protobuf;

namespace Garden.Protocol.Journal;

/// <summary>Reads the journal records that an earlier gardend with Akka.Remote on wrote through Akka.Remote's protobuf
/// serializer (id 2) when Akka picked it over garden-journal. Their manifest is a CLR type name,
/// "Garden.Protocol.Journal.PropertySet, Garden.Protocol", and the records have since moved from the Garden.Protocol
/// assembly to Garden.Actors: such a name no longer resolves as a type. This finds the record by the type's full name
/// among the journal records alone (never another type a stored name could point at), whatever assembly the name gives.
/// It only reads: nothing is bound to it, and it refuses to write.</summary>
public sealed class LegacyProtoJournalSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Akka.Remote's ProtobufSerializer's id, which those records carry.</summary>
    public const int Id = 2;

    private static readonly Dictionary<string, MessageParser> Parsers = JournalReflection.Descriptor.MessageTypes
        .Where(m => JournalSerializer.RecordTypes.Contains(m.ClrType))
        .ToDictionary(m => m.ClrType.FullName!, m => m.Parser);

    public override int Identifier => Id;

    public override string Manifest(object o) => throw Refused(o);

    public override byte[] ToBinary(object obj) => throw Refused(obj);

    /// <summary>The record, or an <see cref="UnreadableRecord"/> saying why not (as <see cref="JournalSerializer"/> does).</summary>
    public override object FromBinary(byte[] bytes, string manifest)
    {
        var comma = manifest.IndexOf(',');
        var name = (comma < 0 ? manifest : manifest[..comma]).Trim();
        if (!Parsers.TryGetValue(name, out var parser))
            return new UnreadableRecord { Manifest = manifest, Reason = $"\"{manifest}\", written through Akka.Remote's protobuf serializer, is no journal record" };
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            return new UnreadableRecord { Manifest = manifest, Reason = $"a \"{manifest}\" record that does not parse: {e.Message}" };
        }
    }

    private static NotSupportedException Refused(object o) =>
        new($"{o.GetType()}: journal records are written by garden-journal (JournalSerializer), never by {nameof(LegacyProtoJournalSerializer)}");
}
