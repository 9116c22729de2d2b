namespace Garden.Actors;

/// <summary>The closed set of errors a caller can get (API.md); the gateway maps each to one gRPC status.</summary>
public enum ErrorKind { NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, ResourceExhausted, Unavailable, Internal }

/// <summary>What a NotFound <see cref="GardenException"/> is about (<see cref="GardenException.Subject"/>).</summary>
public enum NotFoundSubject { None, Container, Process }

/// <summary>A domain error: what was wrong and what was received. Actors reply with it inside Status.Failure.</summary>
public sealed class GardenException(ErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public ErrorKind Kind { get; } = kind;

    /// <summary>What a NotFound could not find, when it is a container (<see cref="UnknownHandle"/>) or a process
    /// (<see cref="UnknownProcess"/>): a transport that names them apart (Garden's ContainerNotFoundError and
    /// ProcessNotFoundError) reads it here, not from the message. None for every other error.</summary>
    public NotFoundSubject Subject { get; private init; }

    /// <summary>The container an unknown handle or process named; null otherwise.</summary>
    public string? Handle { get; private init; }

    /// <summary>The process id of an unknown process; null otherwise.</summary>
    public string? ProcessId { get; private init; }

    public static GardenException UnknownHandle(string handle) =>
        new(ErrorKind.NotFound, $"unknown handle: {handle}") { Subject = NotFoundSubject.Container, Handle = handle };

    public static GardenException UnknownProcess(string handle, string id) =>
        new(ErrorKind.NotFound, $"unknown process {id} in container {handle}") { Subject = NotFoundSubject.Process, Handle = handle, ProcessId = id };

    public static GardenException Invalid(string field, string message) => new(ErrorKind.InvalidArgument, $"{field}: {message}");
}
