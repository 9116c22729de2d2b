using Garden.Actors;
using Grpc.Core;

namespace Garden.Host.Gateway;

/// <summary>The one table from errors to gRPC statuses: a domain error by its kind, the rest by what they mean. The gRPC
/// interceptor (<see cref="UnexpectedErrors"/>) and the Akka.Remote adapter (Remote.ApiActor) both answer with it.</summary>
public static class Errors
{
    public static StatusCode ToStatusCode(ErrorKind kind) => kind switch
    {
        ErrorKind.NotFound => StatusCode.NotFound,
        ErrorKind.AlreadyExists => StatusCode.AlreadyExists,
        ErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        ErrorKind.FailedPrecondition => StatusCode.FailedPrecondition,
        ErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
        ErrorKind.Unavailable => StatusCode.Unavailable,
        _ => StatusCode.Internal,
    };

    public static Status ToStatus(Exception e) => e switch
    {
        AggregateException { InnerExceptions.Count: 1 } a => ToStatus(a.InnerException!),
        RpcException r => r.Status,
        GardenException g => new Status(ToStatusCode(g.Kind), g.Message),
        Akka.Actor.AskTimeoutException => new Status(StatusCode.DeadlineExceeded, "gardend did not answer in time"),
        OperationCanceledException => new Status(StatusCode.Cancelled, "cancelled"),
        _ => new Status(StatusCode.Internal, e.Message),
    };

    public static RpcException ToRpc(Exception e) => e as RpcException ?? new RpcException(ToStatus(e));

    /// <summary>True for what no domain rule explains (a bug, a race not foreseen): worth a line in the log.</summary>
    public static bool IsUnexpected(Exception e) => ToStatus(e).StatusCode is StatusCode.Internal or StatusCode.Unknown;
}
