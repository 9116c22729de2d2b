using Google.Protobuf;
using Garden.Protocol.Api;
using Grpc.Core;

namespace Garden.Protocol.Client;

/// <summary>A running Run or Attach: events in order (started, output, missed, exited), stdin out.</summary>
public sealed class ProcessCall : IDisposable
{
    private readonly IDisposable _call;
    private readonly IAsyncStreamReader<ProcessEvent> _events;
    private readonly Func<StdinChunk, Task> _send;

    internal ProcessCall(IDisposable call, IAsyncStreamReader<ProcessEvent> events, Func<StdinChunk, Task> send, string processId)
    {
        _call = call;
        _events = events;
        _send = send;
        ProcessId = processId;
    }

    public string ProcessId { get; }

    /// <summary>The next event; null when the stream ended (after Exited, or at once for a detached run).</summary>
    public async Task<ProcessEvent?> NextAsync(CancellationToken ct = default) =>
        await GardenClient.Call(async () => await _events.MoveNext(ct).ConfigureAwait(false) ? _events.Current : null).ConfigureAwait(false);

    public Task WriteStdinAsync(ReadOnlyMemory<byte> data) =>
        GardenClient.Call(() => _send(new StdinChunk { Data = ByteString.CopyFrom(data.Span) }));

    public Task CloseStdinAsync() => GardenClient.Call(() => _send(new StdinChunk { Close = true }));

    /// <summary>Reads to the end: all output and the exit.</summary>
    public async Task<ProcessResult> WaitAsync(CancellationToken ct = default)
    {
        using MemoryStream stdout = new(), stderr = new();
        while (await NextAsync(ct).ConfigureAwait(false) is { } e)
        {
            switch (e.KindCase)
            {
                case ProcessEvent.KindOneofCase.Output:
                    (e.Output.Stream == Output.Types.Stream.Stderr ? stderr : stdout).Write(e.Output.Data.Span);
                    break;
                case ProcessEvent.KindOneofCase.Exited:
                    return new ProcessResult(ProcessId, stdout.ToArray(), stderr.ToArray(), e.Exited.ExitCode, e.Exited.Signal);
            }
        }
        throw new GardenClientException("Unavailable", $"process {ProcessId}: the stream ended before the process exited");
    }

    public void Dispose() => _call.Dispose();
}

/// <summary>A subscribed event stream (<see cref="IGardenClient.EventsAsync"/>): events in the order published, until
/// disposed or gardend stops.</summary>
public sealed class EventStream : IDisposable
{
    private readonly IDisposable _call;
    private readonly IAsyncStreamReader<ContainerEvent> _events;

    internal EventStream(IDisposable call, IAsyncStreamReader<ContainerEvent> events)
    {
        _call = call;
        _events = events;
    }

    /// <summary>The next event; null when gardend ended the stream.</summary>
    public async Task<ContainerEvent?> NextAsync(CancellationToken ct = default) =>
        await GardenClient.Call(async () => await _events.MoveNext(ct).ConfigureAwait(false) ? _events.Current : null).ConfigureAwait(false);

    public void Dispose() => _call.Dispose();
}
