using Akka.Actor;
using Akka.Serialization;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Garden.Protocol.Remote;

/// <summary>Akka.Remote bytes of the API: the protobuf encoding, named by the message's protobuf full name
/// ("garden.v1.CreateRequest"). A client in any language that speaks protobuf can read them, and no CLR type name
/// crosses the wire (Akka's default would let a peer name any type to deserialize).</summary>
public sealed class ApiSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    public const int Id = 4748;

    /// <summary>The files whose messages travel: built from the descriptors, so a new message needs no entry here.</summary>
    public static readonly IReadOnlyList<FileDescriptor> Files = [Api.GardenReflection.Descriptor, RemoteReflection.Descriptor];

    private static readonly Dictionary<string, MessageParser> Parsers =
        Files.SelectMany(f => f.MessageTypes).ToDictionary(m => m.FullName, m => m.Parser);

    private static readonly Dictionary<Type, string> Manifests =
        Files.SelectMany(f => f.MessageTypes).ToDictionary(m => m.ClrType, m => m.FullName);

    public override int Identifier => Id;

    public override string Manifest(object o) => Manifests.TryGetValue(o.GetType(), out var m)
        ? m
        : throw new ArgumentException($"{o.GetType()} is not a message of garden.proto or remote.proto", nameof(o));

    public override byte[] ToBinary(object obj) => ((IMessage)obj).ToByteArray();

    public override object FromBinary(byte[] bytes, string manifest) => Parsers.TryGetValue(manifest, out var parser)
        ? parser.ParseFrom(bytes)
        : throw new System.Runtime.Serialization.SerializationException(
            $"unknown API message \"{manifest}\" (a peer with a newer garden.proto than this one?)");
}
