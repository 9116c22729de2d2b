using System.Buffers.Binary;
using Garden.Protocol.Agent;

namespace Garden.Agent;

/// <summary>
/// The two frames that carry a process's bytes, coded by hand on the agent's side (agent.proto's wire format, which
/// Google.Protobuf parses on the other side), so the bytes are copied once on their way and no array is made per frame:
/// <list type="bullet">
/// <item>output: a run of buffered output of one stream becomes one <c>AgentEvent{output: OutputChunk}</c> frame, written
/// straight into the send buffer from the buffer's chunks (several small reads of a pipe leave as one frame);</item>
/// <item>input: the data of an <c>AgentRequest{input: StdinInput}</c> frame is found in place in the receive buffer, so
/// it is copied once, into a buffer the process's stdin writer reuses, instead of into a new array by the parser.</item>
/// </list>
/// Anything else, or an input frame in a form this reader does not expect, goes to Google.Protobuf's parser.
/// </summary>
internal static class StreamFrames
{
    // field numbers of agent.proto, as tags (field << 3 | wire type)
    private const byte EventOutputTag = (3 << 3) | 2;       // AgentEvent.output
    private const byte ChunkStreamTag = (1 << 3) | 0;       // OutputChunk.stream
    private const byte ChunkOffsetTag = (2 << 3) | 0;       // OutputChunk.offset
    private const byte ChunkDataTag = (3 << 3) | 2;         // OutputChunk.data
    private const byte RequestInputTag = (6 << 3) | 2;      // AgentRequest.input
    private const byte InputDataTag = (1 << 3) | 2;         // StdinInput.data
    private const byte InputCloseTag = (2 << 3) | 0;        // StdinInput.close

    /// <summary>Upper bound of an output frame's bytes beyond its data: length prefix, tags and varints.</summary>
    public const int OutputOverhead = 4 + 1 + 5 + 1 + 10 + 1 + 10 + 1 + 5;

    /// <summary>Writes one output frame whose data is the concatenation of <paramref name="data"/> (one stream, contiguous
    /// from <paramref name="offset"/>) at the start of dest; returns the bytes written.</summary>
    public static int WriteOutput(Span<byte> dest, StreamKind stream, long offset, ReadOnlySpan<ReadOnlyMemory<byte>> data)
    {
        int length = 0;
        foreach (var d in data) length += d.Length;
        int inner = (stream != 0 ? 1 + VarintSize((ulong)stream) : 0)
                    + (offset != 0 ? 1 + VarintSize((ulong)offset) : 0)
                    + (length != 0 ? 1 + VarintSize((ulong)length) + length : 0);
        int outer = 1 + VarintSize((ulong)inner) + inner;
        if (outer > FrameSocket.MaxFrame) throw new ArgumentException($"frame of {outer} bytes exceeds {FrameSocket.MaxFrame}");
        BinaryPrimitives.WriteInt32BigEndian(dest, outer);
        int at = 4;
        dest[at++] = EventOutputTag;
        at += WriteVarint(dest[at..], (ulong)inner);
        if (stream != 0)
        {
            dest[at++] = ChunkStreamTag;
            at += WriteVarint(dest[at..], (ulong)stream);
        }
        if (offset != 0)
        {
            dest[at++] = ChunkOffsetTag;
            at += WriteVarint(dest[at..], (ulong)offset);
        }
        if (length != 0)
        {
            dest[at++] = ChunkDataTag;
            at += WriteVarint(dest[at..], (ulong)length);
            foreach (var d in data)
            {
                d.Span.CopyTo(dest[at..]);
                at += d.Length;
            }
        }
        return at;
    }

    /// <summary>True when frame is exactly <c>AgentRequest{input: StdinInput{data, close}}</c> (each field at most once);
    /// data is then where the bytes lie inside the frame.</summary>
    public static bool TryReadInput(ReadOnlySpan<byte> frame, out Range data, out bool close)
    {
        data = default;
        close = false;
        if (frame.Length < 2 || frame[0] != RequestInputTag) return false;
        int at = 1;
        if (!TryReadVarint(frame, ref at, out ulong innerLength) || innerLength != (ulong)(frame.Length - at)) return false;
        bool sawData = false, sawClose = false;
        while (at < frame.Length)
        {
            byte tag = frame[at++];
            if (tag == InputDataTag && !sawData)
            {
                if (!TryReadVarint(frame, ref at, out ulong length) || length > (ulong)(frame.Length - at)) return false;
                data = new Range(at, at + (int)length);
                at += (int)length;
                sawData = true;
            }
            else if (tag == InputCloseTag && !sawClose)
            {
                if (!TryReadVarint(frame, ref at, out ulong value)) return false;
                close = value != 0;
                sawClose = true;
            }
            else
            {
                return false;
            }
        }
        return true;
    }

    private static int VarintSize(ulong v)
    {
        int n = 1;
        while (v >= 0x80)
        {
            v >>= 7;
            n++;
        }
        return n;
    }

    private static int WriteVarint(Span<byte> dest, ulong v)
    {
        int n = 0;
        while (v >= 0x80)
        {
            dest[n++] = (byte)(v | 0x80);
            v >>= 7;
        }
        dest[n++] = (byte)v;
        return n;
    }

    private static bool TryReadVarint(ReadOnlySpan<byte> src, ref int at, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64 && at < src.Length; shift += 7)
        {
            byte b = src[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80) return true;
        }
        return false;
    }
}
