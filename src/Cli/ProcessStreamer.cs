using Garden.Protocol.Api;
using Google.Protobuf;
using Grpc.Core;

namespace Garden.Cli;

/// <summary>The stream loop shared by run and attach: sends the first request, forwards stdin as StdinChunk
/// messages, writes output as it arrives and returns the process's exit code once ProcessExited comes.</summary>
internal sealed class ProcessStreamer(Output output)
{
    /// <param name="detach">return once the process started (printing its id); stdin is not forwarded.</param>
    public async Task<int> StreamAsync<TRequest>(
        AsyncDuplexStreamingCall<TRequest, ProcessEvent> call,
        TRequest first,
        Func<StdinChunk, TRequest> stdinMessage,
        bool detach,
        Action<string>? started = null)
    {
        Exception? firstWriteError = null;
        try
        {
            await call.RequestStream.WriteAsync(first).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            firstWriteError = e;   // the response stream usually tells why (unreachable, refused); rethrown below otherwise
        }

        if (!detach && firstWriteError is null)
            StdinPump.Start(call.RequestStream, stdinMessage);

        await foreach (var ev in call.ResponseStream.ReadAllAsync().ConfigureAwait(false))
        {
            if (output.Json) output.Message(ev);
            switch (ev.KindCase)
            {
                case ProcessEvent.KindOneofCase.Started:
                    started?.Invoke(ev.Started.ProcessId);
                    if (detach)
                    {
                        if (!output.Json) output.Line(ev.Started.ProcessId);
                        return 0;
                    }
                    break;
                case ProcessEvent.KindOneofCase.Output when !output.Json:
                    if (ev.Output.Stream == Protocol.Api.Output.Types.Stream.Stderr) output.Stderr(ev.Output.Data.Span);
                    else output.Stdout(ev.Output.Data.Span);
                    break;
                case ProcessEvent.KindOneofCase.Missed when !output.Json:
                    output.Error($"warning: output bytes {ev.Missed.From}-{ev.Missed.To} were lost " +
                                 $"({ev.Missed.To - ev.Missed.From} bytes no longer kept by gardend)");
                    break;
                case ProcessEvent.KindOneofCase.Exited:
                    return ExitCode(ev.Exited);
            }
        }

        if (firstWriteError is not null) throw firstWriteError;
        throw new CliException(detach
            ? "gardend ended the stream before the process started"
            : "gardend ended the stream before the process exited");
    }

    /// <summary>The process's exit code; 128+N when it was killed by signal N and no code was given.</summary>
    public static int ExitCode(ProcessExited exited) =>
        exited.Signal != 0 && exited.ExitCode <= 0 ? 128 + exited.Signal : exited.ExitCode;

    /// <summary>Reads the CLI's stdin on a background thread (a blocking read must never keep the CLI alive)
    /// and sends it as StdinChunk messages; sends close=true at EOF or when stdin cannot be read.</summary>
    private static class StdinPump
    {
        public static void Start<TRequest>(IClientStreamWriter<TRequest> writer, Func<StdinChunk, TRequest> wrap)
        {
            var thread = new Thread(() => Pump(writer, wrap)) { IsBackground = true, Name = "stdin" };
            thread.Start();
        }

        private static void Pump<TRequest>(IClientStreamWriter<TRequest> writer, Func<StdinChunk, TRequest> wrap)
        {
            var buffer = new byte[32 * 1024];
            try
            {
                while (true)
                {
                    int n;
                    try
                    {
                        n = Terminal.ReadStdin(buffer);
                    }
                    catch (IOException)
                    {
                        n = 0;   // closed or unreadable stdin (CI runs without one): same as EOF
                    }
                    if (n == 0) break;
                    writer.WriteAsync(wrap(new StdinChunk { Data = ByteString.CopyFrom(buffer, 0, n) })).GetAwaiter().GetResult();
                }
                writer.WriteAsync(wrap(new StdinChunk { Close = true })).GetAwaiter().GetResult();
            }
            catch (Exception)
            {
                // The call ended (process exited, daemon gone): the response side reports it.
            }
        }
    }
}
