using System.Buffers.Binary;
using System.Net.Sockets;
using Garden.Protocol.Agent;
using Google.Protobuf;

namespace Garden.Agent.Tests;

/// <summary>The framing both ends use (<see cref="FrameSocket"/>): every frame arrives whole whatever the sends look like,
/// and a connection that waits for its peer holds no receive buffer (gardend keeps one or more such connections per
/// container: a 68 KiB buffer each was most of its live heap with 250 containers).</summary>
public sealed class FrameSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("garden-test-frames-").FullName;
    private readonly Socket _listener;

    public FrameSocketTests()
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_dir, "s")));
        _listener.Listen(1);
    }

    public void Dispose()
    {
        _listener.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<(FrameSocket Reader, Socket Writer)> PairAsync()
    {
        var writer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var accept = _listener.AcceptAsync();
        await writer.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(_dir, "s")));
        return (new FrameSocket(await accept), writer);
    }

    private static byte[] Framed(AgentEvent ev)
    {
        var body = ev.ToByteArray();
        var bytes = new byte[4 + body.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, body.Length);
        body.CopyTo(bytes, 4);
        return bytes;
    }

    private static AgentEvent Output(int size, ulong offset) =>
        new() { Output = new OutputChunk { Offset = offset, Data = ByteString.CopyFrom(Enumerable.Range(0, size).Select(i => (byte)(i * 7 + (int)offset)).ToArray()) } };

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++) await Task.Delay(10);
        return condition();
    }

    [Fact]
    public async Task A_read_waiting_for_its_peer_holds_no_buffer_and_then_reads_every_frame_whole()
    {
        var (reader, writer) = await PairAsync();
        using var _ = reader;
        using var __ = writer;
        var sizes = new[] { 0, 1, 10, 65_536, 70_000, 300_000, 5 };
        var frames = sizes.Select((s, i) => Output(s, (ulong)i)).ToList();

        for (var round = 0; round < 2; round++)
        {
            var pending = reader.ReadFrameAsync(CancellationToken.None).AsTask();
            await Task.Delay(100);
            Assert.False(pending.IsCompleted);
            Assert.False(reader.HoldsBuffer); // waiting without a buffer

            // all the frames in one send (more than the socket holds: sent while they are read): the first read gets its
            // frame, the next ones find theirs in the buffer or arriving
            var send = writer.SendAsync(frames.SelectMany(Framed).ToArray(), SocketFlags.None);
            var got = new List<AgentEvent> { AgentEvent.Parser.ParseFrom((await pending)!.Value.Span) };
            while (got.Count < frames.Count)
                got.Add(AgentEvent.Parser.ParseFrom((await reader.ReadFrameAsync(CancellationToken.None))!.Value.Span));
            await send;
            Assert.Equal(frames, got);

            var next = reader.ReadFrameAsync(CancellationToken.None).AsTask();
            Assert.True(await EventuallyAsync(() => !reader.HoldsBuffer));
            await writer.SendAsync(Framed(Output(3, 99)), SocketFlags.None);
            Assert.Equal(Output(3, 99), AgentEvent.Parser.ParseFrom((await next)!.Value.Span));
        }
    }

    [Fact]
    public async Task A_frame_sent_a_byte_at_a_time_arrives_whole_and_the_end_between_frames_is_null()
    {
        var (reader, writer) = await PairAsync();
        using var _ = reader;
        var frame = Framed(Output(1000, 7));
        var read = reader.ReadFrameAsync(CancellationToken.None).AsTask();
        foreach (var b in frame)
        {
            await writer.SendAsync(new[] { b }, SocketFlags.None);
            if (!read.IsCompleted) await Task.Delay(1);
        }
        Assert.Equal(Output(1000, 7), AgentEvent.Parser.ParseFrom((await read)!.Value.Span));
        writer.Shutdown(SocketShutdown.Send);
        Assert.Null(await reader.ReadFrameAsync(CancellationToken.None));
        Assert.False(reader.HoldsBuffer);
        writer.Dispose();
    }

    [Fact]
    public async Task A_peer_that_closes_inside_a_frame_is_a_bad_frame_and_a_cancelled_wait_ends_the_read()
    {
        var (reader, writer) = await PairAsync();
        using var _ = reader;
        await writer.SendAsync(Framed(Output(100, 1))[..50], SocketFlags.None);
        writer.Shutdown(SocketShutdown.Send);
        await Assert.ThrowsAsync<InvalidDataException>(async () => await reader.ReadFrameAsync(CancellationToken.None));
        writer.Dispose();

        var (quiet, peer) = await PairAsync();
        using var ___ = peer;
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await quiet.ReadFrameAsync(cts.Token));
        Assert.False(quiet.HoldsBuffer);
        quiet.Dispose();
    }

    [Fact]
    public async Task Disposing_during_a_read_ends_the_read_and_a_read_after_is_refused()
    {
        var (reader, writer) = await PairAsync();
        using var _ = writer;
        var pending = reader.ReadFrameAsync(CancellationToken.None).AsTask();
        await Task.Delay(50);
        reader.Dispose();
        ReadOnlyMemory<byte>? frame = null;
        var e = await Record.ExceptionAsync(async () => frame = await pending);
        // the dispose shuts the socket down first: the read ends as at the peer's end (no frame), or fails on the closed socket
        Assert.True(e is null ? frame is null : e is ObjectDisposedException or SocketException or OperationCanceledException, $"{e}");
        Assert.False(reader.HoldsBuffer);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await reader.ReadFrameAsync(CancellationToken.None));
    }
}
