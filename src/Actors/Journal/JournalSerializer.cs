using Akka.Actor;
using Akka.Serialization;
using Google.Protobuf;

namespace Garden.Protocol.Journal;

/// <summary>Marks the messages of journal.proto (events and snapshots) for the journal serializer.</summary>
public interface IJournalRecord : IMessage;

public sealed partial class DaemonStarted : IJournalRecord;
public sealed partial class ContainerRegistered : IJournalRecord;
public sealed partial class ContainerReleased : IJournalRecord;
public sealed partial class ReleaseFinished : IJournalRecord;
public sealed partial class PoolEntryAdded : IJournalRecord;
public sealed partial class PoolEntryReady : IJournalRecord;
public sealed partial class PoolEntryReleased : IJournalRecord;
public sealed partial class HostSnapshot : IJournalRecord;
public sealed partial class RecoveryFinished : IJournalRecord;
public sealed partial class CreateStarted : IJournalRecord;
public sealed partial class CreateCompleted : IJournalRecord;
public sealed partial class PropertySet : IJournalRecord;
public sealed partial class PropertyRemoved : IJournalRecord;
public sealed partial class LifecycleChanged : IJournalRecord;
public sealed partial class Reconciled : IJournalRecord;
public sealed partial class ContainerSnapshot : IJournalRecord;
public sealed partial class LimitsChanged : IJournalRecord;
public sealed partial class OutOfMemory : IJournalRecord;
public sealed partial class PortsReserved : IJournalRecord;
public sealed partial class PortsReturned : IJournalRecord;
public sealed partial class NetInAdded : IJournalRecord;
public sealed partial class NetOutAdded : IJournalRecord;
public sealed partial class GraceTimeChanged : IJournalRecord;
public sealed partial class UnreadableRecord : IJournalRecord;

/// <summary>Journal bytes: the protobuf encoding, named by a short manifest that is never reused or renamed.
/// (Akka's default serializer would store CLR type names, which an upgrade may not be able to read.)</summary>
public sealed class JournalSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4747;

    private static readonly Dictionary<string, MessageParser> Parsers = new()
    {
        ["ds"] = DaemonStarted.Parser,
        ["cr"] = ContainerRegistered.Parser,
        ["cx"] = ContainerReleased.Parser,
        ["hs"] = HostSnapshot.Parser,
        ["rf"] = RecoveryFinished.Parser,
        ["c1"] = CreateStarted.Parser,
        ["c2"] = CreateCompleted.Parser,
        ["ps"] = PropertySet.Parser,
        ["pr"] = PropertyRemoved.Parser,
        ["lc"] = LifecycleChanged.Parser,
        ["rc"] = Reconciled.Parser,
        ["cs"] = ContainerSnapshot.Parser,
        ["lm"] = LimitsChanged.Parser,
        ["om"] = OutOfMemory.Parser,
        ["pp"] = PortsReserved.Parser,
        ["pq"] = PortsReturned.Parser,
        ["ni"] = NetInAdded.Parser,
        ["no"] = NetOutAdded.Parser,
        ["gt"] = GraceTimeChanged.Parser,
        ["cy"] = ReleaseFinished.Parser,
        ["p1"] = PoolEntryAdded.Parser,
        ["p2"] = PoolEntryReady.Parser,
        ["p3"] = PoolEntryReleased.Parser,
    };

    private static readonly Dictionary<Type, string> Manifests =
        Parsers.ToDictionary(p => p.Value.GetType().GetGenericArguments()[0], p => p.Key);

    public override int Identifier => Id;

    /// <summary>The records this serializer writes (each under its manifest).</summary>
    public static IReadOnlyCollection<Type> RecordTypes => Manifests.Keys;

    public override string Manifest(object o) => Manifests.TryGetValue(o.GetType(), out var m)
        ? m
        : throw new ArgumentException($"{o.GetType()} is not a journal message", nameof(o));

    public override byte[] ToBinary(object obj) => ((IMessage)obj).ToByteArray();

    /// <summary>The record, or an <see cref="UnreadableRecord"/> saying why not: one bad record must not stop the
    /// recovery of every container (the actor that meets it decides what it means). UnreadableRecord has no manifest,
    /// so it can never be written.</summary>
    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!Parsers.TryGetValue(manifest, out var parser))
            return new UnreadableRecord { Manifest = manifest, Reason = $"unknown journal manifest \"{manifest}\" (written by a newer gardend than this one?)" };
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            return new UnreadableRecord { Manifest = manifest, Reason = $"a \"{manifest}\" record that does not parse: {e.Message}" };
        }
    }
}
