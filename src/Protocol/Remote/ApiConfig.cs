using Akka.Configuration;

namespace Garden.Protocol.Remote;

public static class ApiConfig
{
    /// <summary>ApiSerializer (this assembly's reference.conf) and a binding of each concrete API message to it: exact
    /// bindings, so that Akka.Remote's "Google.Protobuf.IMessage = proto" (CLR type names) never wins by hash order.
    /// Part of <see cref="Client.AkkaGardenClient.TransportDefaults"/>, which every client and gardend's Akka.Remote
    /// endpoint load.</summary>
    public static Config Default()
    {
        using var stream = typeof(ApiConfig).Assembly.GetManifestResourceStream("Garden.Protocol.Remote.reference.conf")
            ?? throw new InvalidOperationException("Garden.Protocol.Remote.reference.conf is not embedded");
        using var reader = new StreamReader(stream);
        static string Name(Type t) => $"\"{t.FullName}, {t.Assembly.GetName().Name}\"";
        var exact = ApiSerializer.Files.SelectMany(f => f.MessageTypes).Select(m => $"{Name(m.ClrType)} = garden-api");
        return ConfigurationFactory.ParseString("akka.actor.serialization-bindings {\n" + string.Join("\n", exact) + "\n}")
            .WithFallback(ConfigurationFactory.ParseString(reader.ReadToEnd()));
    }
}
