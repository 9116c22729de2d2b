using Akka.Actor;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;

namespace Garden.Actors.Process;

/// <summary>An agent stream that tells its ProcessActor what it sees (the exit) and when it closes.</summary>
internal sealed class ObservedStream : IProcessStream
{
    private readonly IAgentStream inner;
    private readonly IActorRef owner;
    private int _closed;

    public ObservedStream(IAgentStream inner, IActorRef owner)
    {
        this.inner = inner;
        this.owner = owner;
        owner.Tell(ProcessProtocol.StreamOpened.Instance);
    }

    public string ProcessId => inner.ProcessId;

    public async ValueTask<AgentEvent?> ReadAsync(CancellationToken ct)
    {
        var evt = await inner.ReadAsync(ct).ConfigureAwait(false);
        if (evt?.KindCase == AgentEvent.KindOneofCase.Exited)
            owner.Tell(new ProcessProtocol.ExitObserved(evt.Exited.ExitCode, evt.Exited.Signal));
        return evt;
    }

    public ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct) => inner.WriteStdinAsync(data, ct);

    public ValueTask CloseStdinAsync(CancellationToken ct) => inner.CloseStdinAsync(ct);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 1) return;
        owner.Tell(ProcessProtocol.StreamClosed.Instance);
        await inner.DisposeAsync().ConfigureAwait(false);
    }
}
