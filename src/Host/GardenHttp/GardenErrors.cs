using Garden.Actors;

namespace Garden.Host.GardenHttp;

/// <summary>A request this layer refuses before any backend sees it (an unknown route, a malformed head, a body too
/// large), with the HTTP status that says why. Answered, like every error, as Garden's JSON error.</summary>
public sealed class HttpProblem(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>The one place errors become Garden's: an HTTP status and garden.Error's JSON, whose <c>Type</c> the Go
/// client turns back into its error type (errors.go). Garden's client looks only at whether the status is 2xx; the codes
/// are for people and other clients.</summary>
public static class GardenErrors
{
    public const string ContainerNotFound = "ContainerNotFoundError";
    public const string ProcessNotFound = "ProcessNotFoundError";
    public const string ServiceUnavailable = "ServiceUnavailableError";
    public const string Unrecoverable = "UnrecoverableError";
    public const string ExecutableNotFound = "ExecutableNotFoundError";

    /// <summary>An error from the backend or from this layer as Garden says it. <paramref name="processId"/> is the
    /// process a route names (Attach), which a ProcessNotFoundError must carry.
    /// <list type="bullet">
    /// <item>NotFound of a handle → 404 ContainerNotFoundError{Handle}; of a process → 404 ProcessNotFoundError{ProcessID};
    /// any other NotFound → 404, generic;</item>
    /// <item>Unavailable → 503 ServiceUnavailableError (the client returns garden.ServiceUnavailableError);</item>
    /// <item>InvalidArgument → 400, but ExecutableNotFoundError when the executable does not exist;</item>
    /// <item>AlreadyExists, FailedPrecondition → 409; ResourceExhausted, Internal and anything unforeseen → 500, generic
    /// (Type "": the client returns errors.New(Message)).</item>
    /// </list>
    /// No kind of ours means guardian's UnrecoverableError (a server that cannot go on): none is sent.</summary>
    public static (int Status, GardenError Error) From(Exception e, string? processId = null)
    {
        switch (e)
        {
            case AggregateException { InnerExceptions.Count: 1 } a:
                return From(a.InnerException!, processId);
            case HttpProblem p:
                return (p.Status, Generic(p.Message));
            case GardenException g:
                return g.Kind switch
                {
                    // by what was not found (GardenException.UnknownHandle / UnknownProcess), not by the message: NotFound also
                    // says "no such property" or "no such tool", which must stay generic errors (ContainerNotFoundError would
                    // make the client report "unknown handle: " for a missing property)
                    ErrorKind.NotFound when g.Subject == NotFoundSubject.Container =>
                        (404, new GardenError { Type = ContainerNotFound, Message = g.Message, Handle = g.Handle ?? "" }),
                    ErrorKind.NotFound when g.Subject == NotFoundSubject.Process =>
                        (404, new GardenError { Type = ProcessNotFound, Message = g.Message, ProcessID = processId ?? g.ProcessId ?? "" }),
                    ErrorKind.NotFound => (404, Generic(g.Message)),
                    ErrorKind.Unavailable => (503, new GardenError { Type = ServiceUnavailable, Message = g.Message }),
                    ErrorKind.InvalidArgument when g.Message.Contains("executable file not found", StringComparison.Ordinal) =>
                        (400, new GardenError { Type = ExecutableNotFound, Message = g.Message }),
                    ErrorKind.InvalidArgument => (400, Generic(g.Message)),
                    ErrorKind.AlreadyExists or ErrorKind.FailedPrecondition => (409, Generic(g.Message)),
                    _ => (500, Generic(g.Message)),
                };
            default:
                return (500, Generic(e.Message));
        }
    }

    /// <summary>Type "": the Go client returns <c>errors.New(Message)</c>.</summary>
    public static GardenError Generic(string message) => new() { Message = message };

    /// <summary>A bulk entry's error: generic, as guardian sends them (<c>garden.NewError(err.Error())</c>).</summary>
    public static GardenError? OfEntry(string error) => error.Length == 0 ? null : Generic(error);
}
