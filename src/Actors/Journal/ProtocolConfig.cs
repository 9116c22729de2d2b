using Akka.Configuration;

namespace Garden.Protocol.Journal;

public static class ProtocolConfig
{
    /// <summary>The journal's serializers (journal.conf, embedded in this assembly) and a binding of each concrete journal
    /// record to its serializer. Akka picks a serializer by the exact type first, then by the first binding in its
    /// (unordered) map that the type implements: with Akka.Remote's "Google.Protobuf.IMessage = proto" beside ours, which
    /// one won was a matter of hash order, and "proto" names CLR types. Exact bindings leave no choice. (The API's
    /// messages are bound the same way by Garden.Protocol.Remote.ApiConfig, for the systems that speak Akka.Remote.)</summary>
    public static Config Default()
    {
        using var stream = typeof(ProtocolConfig).Assembly.GetManifestResourceStream("Garden.Actors.journal.conf")
            ?? throw new InvalidOperationException("Garden.Actors.journal.conf is not embedded");
        using var reader = new StreamReader(stream);
        static string Name(Type t) => $"\"{t.FullName}, {t.Assembly.GetName().Name}\"";
        var exact = JournalSerializer.RecordTypes.Select(t => $"{Name(t)} = garden-journal");
        return ConfigurationFactory.ParseString("akka.actor.serialization-bindings {\n" + string.Join("\n", exact) + "\n}")
            .WithFallback(ConfigurationFactory.ParseString(reader.ReadToEnd()));
    }
}
