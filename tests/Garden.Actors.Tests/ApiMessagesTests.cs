using Akka.Actor;
using Garden.Protocol.Remote;
using Google.Protobuf;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>Every message of garden.proto and remote.proto may travel over Akka.Remote: it must be marked
/// IApiMessage (src/Protocol/Api/ApiMessages.cs, src/Protocol/Remote/ApiMessages.Remote.cs), or Akka would pick its default serializer.</summary>
public sealed class ApiMessagesTests
{
    public static IEnumerable<object[]> Messages() =>
        ApiSerializer.Files.SelectMany(f => f.MessageTypes).Select(m => new object[] { m.FullName });

    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_api_message_is_marked_and_round_trips_under_its_full_name(string fullName)
    {
        var descriptor = ApiSerializer.Files.SelectMany(f => f.MessageTypes).Single(m => m.FullName == fullName);
        Assert.True(typeof(IApiMessage).IsAssignableFrom(descriptor.ClrType),
            $"{fullName} ({descriptor.ClrType}) does not implement IApiMessage: add it to src/Protocol/Api/ApiMessages.cs (garden.proto) or src/Protocol/Remote/ApiMessages.Remote.cs");

        using var system = ActorSystem.Create("api-test", ApiConfig.Default());
        var message = (IMessage)Activator.CreateInstance(descriptor.ClrType)!;
        Assert.IsType<ApiSerializer>(system.Serialization.FindSerializerFor(message));
        var api = (ApiSerializer)system.Serialization.FindSerializerFor(message);
        Assert.Equal(fullName, api.Manifest(message));
        Assert.Equal(message, api.FromBinary(api.ToBinary(message), fullName));
    }

    [Fact]
    public void An_unknown_manifest_is_a_clear_error()
    {
        using var system = ActorSystem.Create("api-test", ApiConfig.Default());
        var api = new ApiSerializer((ExtendedActorSystem)system);
        var e = Assert.Throws<System.Runtime.Serialization.SerializationException>(() => api.FromBinary([], "garden.v1.Nope"));
        Assert.Contains("garden.v1.Nope", e.Message);
    }
}
