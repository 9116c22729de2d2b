using Garden.Actors;
using Grpc.Core;

namespace Garden.Host.Gateway;

/// <summary>The one place domain errors become gRPC status codes.</summary>
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

    public static RpcException ToRpc(Exception e) => e switch
    {
        RpcException r => r,
        GardenException g => new RpcException(new Status(ToStatusCode(g.Kind), g.Message)),
        Akka.Actor.AskTimeoutException => new RpcException(new Status(StatusCode.DeadlineExceeded, "gardend did not answer in time")),
        OperationCanceledException => new RpcException(new Status(StatusCode.Cancelled, "cancelled")),
        _ => new RpcException(new Status(StatusCode.Internal, e.Message)),
    };

    public static string ToCodeName(ErrorKind kind) => ToStatusCode(kind).ToString();
}
