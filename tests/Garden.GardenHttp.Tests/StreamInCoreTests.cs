using System.Runtime.CompilerServices;
using Akka.Actor;
using Garden.Actors;
using Garden.Actors.Container;
using Garden.Actors.Process;
using Garden.Host.ApiCore;
using Garden.Protocol.Agent;
using Xunit;
using Api = Garden.Protocol.Api;

namespace Garden.GardenHttp.Tests;

/// <summary>The API core's StreamIn against a tool that refuses the archive while its first bytes are still being written
/// to it: the client's stream (a gRPC call's request stream, which the transport reuses for the next call on the
/// connection; a Garden HTTP connection's body) is read by nobody once the call has answered.</summary>
public sealed class StreamInCoreTests : IAsyncLifetime
{
    private readonly ActorSystem _system = ActorSystem.Create("streamin-core");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _system.Terminate();

    /// <summary>A tool that exits 3 (bad archive) at once, while a write of stdin to it waits until released.</summary>
    private sealed class RefusingTool : IProcessStream
    {
        public TaskCompletionSource WriteReleased { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public string ProcessId => "stream-in-test";
        private bool _exited;

        public ValueTask<AgentEvent?> ReadAsync(CancellationToken ct)
        {
            if (_exited) return ValueTask.FromResult<AgentEvent?>(null);
            _exited = true;
            return ValueTask.FromResult<AgentEvent?>(new AgentEvent { Exited = new Exited { ExitCode = (int)ToolExit.ToolBadInput } });
        }

        public async ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct) => await WriteReleased.Task.WaitAsync(ct);

        public ValueTask CloseStdinAsync(CancellationToken ct) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private sealed class Host : ReceiveActor
    {
        public Host(IProcessStream tool) =>
            Receive<ContainerProtocol.RunProcess>(_ => Sender.Tell(new ProcessProtocol.ProcessStarted(tool.ProcessId, tool)));
    }

    /// <summary>The client's stream, recording every read that starts after the call answered.</summary>
    private sealed class ClientStream
    {
        public volatile bool CallEnded;
        public int ReadsAfterTheAnswer;

        public async IAsyncEnumerable<ReadOnlyMemory<byte>> Chunks([EnumeratorCancellation] CancellationToken ct = default)
        {
            for (var i = 0; i < 100; i++)
            {
                if (CallEnded) Interlocked.Increment(ref ReadsAfterTheAnswer);
                await Task.Delay(5, ct);
                yield return new byte[1024];
            }
        }
    }

    [Fact]
    public async Task A_refused_archive_stops_the_reading_of_the_clients_stream_before_the_call_answers()
    {
        var tool = new RefusingTool();
        var host = _system.ActorOf(Props.Create(() => new Host(tool)));
        var api = new GardenApi(new GatewayContext(host, TimeSpan.FromSeconds(10), _system));
        var client = new ClientStream();

        var e = await Assert.ThrowsAsync<GardenException>(() =>
            api.StreamInAsync(new Api.StreamInRequest { Handle = "h", Path = "/tmp" }, client.Chunks()));
        client.CallEnded = true;
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);

        // the write that was in flight when the tool refused ends now; a forwarder still alive would read on
        tool.WriteReleased.TrySetResult();
        await Task.Delay(200);
        Assert.Equal(0, Volatile.Read(ref client.ReadsAfterTheAnswer));
    }
}
