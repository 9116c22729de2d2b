using Garden.Cli.Args;
using Grpc.Core;

namespace Garden.Cli;

/// <summary>A failure of the CLI itself that has its message ready (e.g. the stream ended early).</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>Turns whatever went wrong into the one line printed after "garden: ".</summary>
internal static class Errors
{
    public static string Describe(Exception e, GardenAddress address)
    {
        if (Find<DaemonUnreachableException>(e) is { } unreachable)
            return $"cannot reach gardend at {address}: {unreachable.Reason}";

        if (e is RpcException rpc)
        {
            // Transport failures after connecting (reset, protocol error): the daemon's status detail is not there.
            var debug = rpc.Status.DebugException;
            if (debug is HttpRequestException or IOException && rpc.StatusCode is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown)
                return $"lost connection to gardend at {address}: {Innermost(debug).Message}";
            return string.IsNullOrWhiteSpace(rpc.Status.Detail)
                ? $"gardend answered {rpc.StatusCode}"
                : OneLine(rpc.Status.Detail);
        }

        return e is CliException ? e.Message : $"{e.GetType().Name}: {OneLine(e.Message)}";
    }

    private static T? Find<T>(Exception? e) where T : Exception
    {
        for (; e is not null; e = (e as RpcException)?.Status.DebugException ?? e.InnerException)
            if (e is T t) return t;
        return null;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null) e = e.InnerException;
        return e;
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}
