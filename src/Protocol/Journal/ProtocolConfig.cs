using Akka.Configuration;

namespace Garden.Protocol.Journal;

public static class ProtocolConfig
{
    /// <summary>The embedded defaults of this assembly (the serializer binding).</summary>
    public static Config Default()
    {
        using var stream = typeof(ProtocolConfig).Assembly.GetManifestResourceStream("Garden.Protocol.reference.conf")
            ?? throw new InvalidOperationException("Garden.Protocol.reference.conf is not embedded");
        using var reader = new StreamReader(stream);
        return ConfigurationFactory.ParseString(reader.ReadToEnd());
    }
}
