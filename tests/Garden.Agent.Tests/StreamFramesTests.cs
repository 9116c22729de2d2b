using Garden.Protocol.Agent;
using Google.Protobuf;

namespace Garden.Agent.Tests;

/// <summary>The agent codes its output frames and reads its stdin frames by hand (<see cref="StreamFrames"/>); the daemon
/// uses Google.Protobuf. Both must agree on every byte, whatever the sizes, offsets and streams.</summary>
public sealed class StreamFramesTests
{
    public static TheoryData<int, long, int> Outputs => new()
    {
        { 0, 0, 0 }, { 0, 0, 1 }, { 1, 5, 127 }, { 0, 127, 128 }, { 1, 1L << 40, 65536 }, { 0, long.MaxValue, 300_000 },
    };

    [Theory]
    [MemberData(nameof(Outputs))]
    public void An_output_frame_parses_as_the_chunk_of_its_pieces(int stream, long offset, int length)
    {
        var bytes = new byte[length];
        Random.Shared.NextBytes(bytes);
        // split in uneven pieces, as a run of buffer chunks is
        var pieces = new List<ReadOnlyMemory<byte>>();
        for (int at = 0; at < length;)
        {
            int n = Math.Min(length - at, 1 + Random.Shared.Next(70_000));
            pieces.Add(bytes.AsMemory(at, n));
            at += n;
        }
        var buf = new byte[length + StreamFrames.OutputOverhead];
        int written = StreamFrames.WriteOutput(buf, (StreamKind)stream, offset, pieces.ToArray());

        int size = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(buf);
        Assert.Equal(written, 4 + size);
        var ev = AgentEvent.Parser.ParseFrom(buf.AsSpan(4, size));
        Assert.Equal(AgentEvent.KindOneofCase.Output, ev.KindCase);
        Assert.Equal((StreamKind)stream, ev.Output.Stream);
        Assert.Equal((ulong)offset, ev.Output.Offset);
        Assert.Equal(bytes, ev.Output.Data.ToByteArray());
        // and byte for byte what Google.Protobuf writes
        Assert.Equal(new AgentEvent { Output = new OutputChunk { Stream = (StreamKind)stream, Offset = (ulong)offset, Data = ByteString.CopyFrom(bytes) } }
            .ToByteArray(), buf.AsSpan(4, size).ToArray());
    }

    public static TheoryData<int, bool> Inputs => new() { { 0, false }, { 0, true }, { 1, false }, { 200, true }, { 262_144, false } };

    [Theory]
    [MemberData(nameof(Inputs))]
    public void A_stdin_frame_is_read_in_place(int length, bool close)
    {
        var data = new byte[length];
        Random.Shared.NextBytes(data);
        var frame = new AgentRequest { Input = new StdinInput { Data = ByteString.CopyFrom(data), Close = close } }.ToByteArray();
        Assert.True(StreamFrames.TryReadInput(frame, out var range, out bool gotClose));
        Assert.Equal(data, frame.AsSpan()[range].ToArray());
        Assert.Equal(close, gotClose);
    }

    [Fact]
    public void Any_other_frame_is_left_to_the_parser()
    {
        var others = new List<byte[]>
        {
            new AgentRequest { Resize = new ResizeRequest { Rows = 1, Cols = 2 } }.ToByteArray(),
            new AgentRequest { Ping = new PingRequest() }.ToByteArray(),
            Array.Empty<byte>(),
        };
        var input = new AgentRequest { Input = new StdinInput { Data = ByteString.CopyFromUtf8("abc"), Close = true } }.ToByteArray();
        others.Add(input[..^1]);                                  // truncated
        others.Add([.. input, 0x08, 0x01]);                       // a second field after the input (the outer length no longer covers the frame)
        var twice = new AgentRequest { Input = new StdinInput { Data = ByteString.CopyFromUtf8("a") } }.ToByteArray();
        others.Add([twice[0], (byte)(twice[1] * 2), .. twice[2..], .. twice[2..]]); // data twice: the parser's rules (last wins) apply
        var unknown = new byte[] { 0x32, 0x02, 0x18, 0x01 };     // an unknown field 3 inside StdinInput
        others.Add(unknown);
        foreach (var frame in others) Assert.False(StreamFrames.TryReadInput(frame, out _, out _));
    }
}
