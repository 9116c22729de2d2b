namespace Garden.Actors;

/// <summary>The closed set of errors a caller can get (API.md); the gateway maps each to one gRPC status.</summary>
public enum ErrorKind { NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, ResourceExhausted, Unavailable, Internal }

/// <summary>A domain error: what was wrong and what was received. Actors reply with it inside Status.Failure.</summary>
public sealed class GardenException(ErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public ErrorKind Kind { get; } = kind;

    public static GardenException UnknownHandle(string handle) => new(ErrorKind.NotFound, $"unknown handle: {handle}");

    public static GardenException UnknownProcess(string handle, string id) =>
        new(ErrorKind.NotFound, $"unknown process {id} in container {handle}");

    public static GardenException Invalid(string field, string message) => new(ErrorKind.InvalidArgument, $"{field}: {message}");
}
