using Akka.Configuration;

namespace Garden.Protocol.Journal;

public static class ProtocolConfig
{
    /// <summary>The embedded defaults of this assembly (the serializer binding), and a binding of each concrete journal
    /// and API message to its serializer. Akka picks a serializer by the exact type first, then by the first binding in
    /// its (unordered) map that the type implements: with Akka.Remote's "Google.Protobuf.IMessage = proto" beside ours,
    /// which one won was a matter of hash order, and "proto" names CLR types. Exact bindings leave no choice.</summary>
    public static Config Default()
    {
        using var stream = typeof(ProtocolConfig).Assembly.GetManifestResourceStream("Garden.Protocol.reference.conf")
            ?? throw new InvalidOperationException("Garden.Protocol.reference.conf is not embedded");
        using var reader = new StreamReader(stream);
        static string Name(Type t) => $"\"{t.FullName}, {t.Assembly.GetName().Name}\"";
        var exact = JournalSerializer.RecordTypes.Select(t => $"{Name(t)} = garden-journal")
            .Concat(Remote.ApiSerializer.Files.SelectMany(f => f.MessageTypes).Select(m => $"{Name(m.ClrType)} = garden-api"));
        return ConfigurationFactory.ParseString("akka.actor.serialization-bindings {\n" + string.Join("\n", exact) + "\n}")
            .WithFallback(ConfigurationFactory.ParseString(reader.ReadToEnd()));
    }
}
