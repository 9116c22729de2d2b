using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Dispatch.SysMsg;
using Akka.Remote;
using Akka.Remote.Serialization;
using Akka.Serialization;

namespace Garden.Host.Remote;

// What a peer of gardend's Akka.Remote endpoint can make gardend deserialize. The endpoint is an ActorSystem of its own
// that holds only /user/host (the HostActor and the containers live in another, local-only system, out of every peer's
// reach), and every serializer Akka would use on an inbound message is one of these: the API's protobuf messages
// (ApiSerializer) and the few Akka messages remoting itself needs, nothing named by a CLR type, nothing that stops,
// restarts or supervises an actor. See AkkaRemote.Hardening for how they are bound.

/// <summary>Stands in for every serializer a peer must not use (Akka's JSON, which names CLR types, its byte-array,
/// primitive, protobuf-by-CLR-type, remote-deployment and journal serializers): nothing deserializes, and nothing of those
/// kinds is sent either. A string manifest, so Akka never resolves the CLR type name a peer put in it.</summary>
public sealed class RefusingSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    /// <summary>Akka passes a name's serialization-settings when it has some (JSON has).</summary>
    public RefusingSerializer(ExtendedActorSystem system, Akka.Configuration.Config _) : this(system) { }

    /// <summary>The JSON serializer's id: the default binding for any object, and the id a JSON message arrives with.</summary>
    public override int Identifier => 1;

    public override string Manifest(object o) => throw Refused(o.GetType().FullName ?? "?");

    public override byte[] ToBinary(object obj) => throw Refused(obj.GetType().FullName ?? "?");

    public override object FromBinary(byte[] bytes, string manifest) =>
        throw new SerializationException($"gardend's Akka.Remote endpoint accepts only garden.v1 messages (ApiSerializer); refused \"{manifest}\"");

    private static SerializationException Refused(string type) =>
        new($"gardend's Akka.Remote endpoint sends only garden.v1 messages (ApiSerializer); refused to send a {type}");
}

/// <summary>Akka's serializer of its own small messages, inbound limited to what remoting needs: Identify (a client finds
/// /user/host) and the remote watcher's heartbeats. PoisonPill, Kill, remote-deployment scopes, configs and routers are
/// refused; everything gardend sends is written as Akka writes it.</summary>
public sealed class InboundMiscSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    private static readonly HashSet<string> Accepted = ["ID", "RWHB", "RWHR"]; // Identify, Heartbeat, HeartbeatRsp

    private readonly MiscMessageSerializer _akka = new(system);

    public override int Identifier => 16;

    public override string Manifest(object o) => _akka.Manifest(o);

    public override byte[] ToBinary(object obj) => _akka.ToBinary(obj);

    public override object FromBinary(byte[] bytes, string manifest) => Accepted.Contains(manifest)
        ? _akka.FromBinary(bytes, manifest)
        : throw new SerializationException($"gardend's Akka.Remote endpoint refuses Akka message \"{manifest}\" from a peer");
}

/// <summary>System messages from a peer, limited to death watch between a peer's actors and ours: Watch and Unwatch of one
/// of our actors by one of the peer's, and the notice that one of the peer's actors died. Terminate, Create, Recreate,
/// Suspend, Resume, Supervise, Failed — which stop, restart or supervise an actor — are refused, and so is a death
/// watch message that names two of our own actors (it would make one think the other died, or watch it uninvited).
/// The manifest is compared as a string: no CLR type a peer names is ever loaded.</summary>
public sealed class InboundSystemMessageSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    private static readonly Dictionary<string, Type> Accepted =
        new[] { typeof(Watch), typeof(Unwatch), typeof(DeathWatchNotification) }.ToDictionary(ManifestOf);

    private readonly SystemMessageSerializer _akka = new(system);

    public override int Identifier => 22;

    /// <summary>What Akka writes for a serializer that includes its type: "Namespace.Type, Assembly".</summary>
    private static string ManifestOf(Type t) => $"{t.FullName}, {t.Assembly.GetName().Name}";

    public override string Manifest(object o) => ManifestOf(o.GetType());

    public override byte[] ToBinary(object obj) => _akka.ToBinary(obj);

    public override object FromBinary(byte[] bytes, string manifest)
    {
        if (!Accepted.TryGetValue(manifest, out var type))
            throw new SerializationException($"gardend's Akka.Remote endpoint refuses system message \"{manifest}\" from a peer");
        var message = _akka.FromBinary(bytes, type);
        var ok = message switch
        {
            Watch w => IsLocal(w.Watchee) && !IsLocal(w.Watcher),
            Unwatch u => IsLocal(u.Watchee) && !IsLocal(u.Watcher),
            DeathWatchNotification d => !IsLocal(d.Actor),
            _ => false,
        };
        return ok ? message : throw new SerializationException($"gardend's Akka.Remote endpoint refuses {type.Name} naming its own actors from a peer");
    }

    private static bool IsLocal(IActorRef? actor) => actor is IInternalActorRef { IsLocal: true };
}

/// <summary>The endpoint system's guardian resumes /user/host when it throws (never restarts it: its open streams stay).</summary>
public sealed class ResumingGuardianStrategy : SupervisorStrategyConfigurator
{
    public override SupervisorStrategy Create() => new OneForOneStrategy(_ => Directive.Resume);
}
