using Google.Protobuf;

namespace Garden.Protocol.Remote;

/// <summary>Marks the messages that travel over Akka.Remote: every message of garden.proto (the public API) and of
/// remote.proto (errors, end of stream). Bound to ApiSerializer in Garden.Protocol.Remote's reference.conf; declared
/// here, beside garden.proto, because a partial class of a generated message can only be completed in its own assembly
/// (this one has no Akka).</summary>
public interface IApiMessage : IMessage;
