using Garden.Protocol.Agent;

namespace Garden.Agent.Tests;

/// <summary>The agent's output buffer on its own (no agent, no process): when a stream's output counts as complete, and
/// that no byte a process wrote before its exit is lost, doubled or reordered, whatever the order of the reader, the
/// sender and the end of the wait for EOF.</summary>
public sealed class OutputBufferTests
{
    private static readonly StreamKind Out = StreamKind.Stdout, Err = StreamKind.Stderr;

    private static byte[] Bytes(int n, int from = 0) => Enumerable.Range(from, n).Select(i => (byte)(i % 251)).ToArray();

    private static (byte[] Data, OutputBuffer.Snapshot Snap) TakeAll(OutputBuffer b, long from)
    {
        var slices = new List<OutputBuffer.Slice>();
        var snap = b.Take(from, int.MaxValue, slices);
        return (slices.SelectMany(s => s.Data.ToArray()).ToArray(), snap);
    }

    private static void Read(OutputBuffer b, StreamKind kind, byte[] data)
    {
        int allowed = b.Reserve(kind, 64 * 1024);
        Assert.True(allowed >= data.Length, $"room for {allowed} bytes, {data.Length} to append");
        b.Append(kind, data, allowed);
    }

    [Fact]
    public void Bytes_left_in_the_pipe_when_the_wait_for_eof_ends_are_still_delivered_before_the_exit()
    {
        long inPipe = 10;
        var b = new OutputBuffer(16, 1, _ => inPipe);
        var all = Bytes(26);
        Read(b, Out, all[..16]); // the buffer is full: the reader waits for room, 10 bytes stay in the pipe
        b.SetExit(new Exited { ExitCode = 0 });
        b.ForceDone(); // 1 s after the exit: a grandchild may hold the pipe, but these 10 bytes are the process's

        var (first, snap) = TakeAll(b, 0);
        Assert.Equal(all[..16], first);
        Assert.Null(snap.Exit); // before: Exited here, and the 10 bytes were never sent
        b.MarkSent(16);

        inPipe = 0;
        Read(b, Out, all[16..]);
        var (rest, end) = TakeAll(b, 16);
        Assert.Equal(all[16..], rest);
        Assert.NotNull(end.Exit);
    }

    [Fact]
    public void A_reader_waiting_for_room_when_the_wait_for_eof_ends_is_measured_once_it_appended()
    {
        long inPipe = 30; // of 46 bytes written, 16 were read
        var b = new OutputBuffer(16, 1, _ => Interlocked.Read(ref inPipe));
        Read(b, Out, Bytes(16));
        b.SetExit(new Exited());
        var reader = new Thread(() =>
        {
            int allowed = b.Reserve(Out, 64 * 1024); // waits: 16 unsent bytes fill the buffer
            Interlocked.Add(ref inPipe, -allowed);
            b.Append(Out, Bytes(allowed, 16), allowed);
        });
        reader.Start();
        Thread.Sleep(50);
        b.ForceDone();
        var (first, snap) = TakeAll(b, 0);
        Assert.Equal(16, first.Length);
        Assert.Null(snap.Exit);
        b.MarkSent(16);
        Assert.True(reader.Join(5000));

        var (second, snap2) = TakeAll(b, 16);
        Assert.Equal(Bytes(16, 16), second);
        // 14 bytes were in the pipe when the reader appended its 16: still no exit
        Assert.Null(snap2.Exit);
        b.MarkSent(32);
        Read(b, Out, Bytes(14, 32));
        Interlocked.Add(ref inPipe, -14);
        var (third, end) = TakeAll(b, 32);
        Assert.Equal(Bytes(14, 32), third);
        Assert.NotNull(end.Exit);
    }

    [Fact]
    public void A_grandchild_writing_after_the_wait_for_eof_ended_does_not_hold_the_stream()
    {
        long inPipe = 0;
        var b = new OutputBuffer(1024, 2, _ => inPipe);
        Read(b, Out, Bytes(5));
        b.StreamEnded(Err);
        b.SetExit(new Exited());
        Assert.Null(TakeAll(b, 0).Snap.Exit); // stdout is still open: wait for EOF a while
        b.ForceDone();
        Read(b, Out, Bytes(7, 5)); // the grandchild's, after the measure
        var (data, snap) = TakeAll(b, 0);
        Assert.Equal(12, data.Length);
        Assert.NotNull(snap.Exit);
    }

    [Fact]
    public void Without_the_end_of_the_wait_the_output_is_complete_only_at_eof_of_every_stream()
    {
        var b = new OutputBuffer(1024, 2, _ => 0);
        Read(b, Out, Bytes(5));
        b.SetExit(new Exited());
        b.StreamEnded(Out);
        Assert.Null(TakeAll(b, 0).Snap.Exit);
        b.StreamEnded(Err);
        Assert.NotNull(TakeAll(b, 0).Snap.Exit);
    }

    /// <summary>A pipe between a simulated process and the buffer's reader, as the kernel's: bounded, the reader the only
    /// one taking from it, FIONREAD what it holds.</summary>
    private sealed class FakePipe(int capacity)
    {
        private readonly object _gate = new();
        private readonly Queue<byte> _bytes = new();
        private bool _closed, _aborted;

        public long Pending
        {
            get { lock (_gate) return _bytes.Count; }
        }

        public void Write(ReadOnlySpan<byte> data)
        {
            lock (_gate)
            {
                foreach (var x in data)
                {
                    while (_bytes.Count >= capacity && !_aborted) Monitor.Wait(_gate);
                    if (_aborted) return;
                    _bytes.Enqueue(x);
                    Monitor.PulseAll(_gate);
                }
            }
        }

        public void Close()
        {
            lock (_gate)
            {
                _closed = true;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>The test is over: the writer and the reader stop.</summary>
        public void Abort()
        {
            lock (_gate)
            {
                _aborted = true;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>Blocks until readable (data or EOF); false once aborted.</summary>
        public bool WaitReadable()
        {
            lock (_gate)
            {
                while (_bytes.Count == 0 && !_closed && !_aborted) Monitor.Wait(_gate);
                return !_aborted;
            }
        }

        public int Read(Span<byte> dest)
        {
            lock (_gate)
            {
                int n = Math.Min(dest.Length, _bytes.Count);
                for (int i = 0; i < n; i++) dest[i] = _bytes.Dequeue();
                Monitor.PulseAll(_gate);
                return n;
            }
        }
    }

    /// <summary>Many runs of a process that writes to one or two pipes and exits, sometimes leaving a grandchild that holds
    /// them open, with a reader per pipe as the agent's (wait readable, reserve, read, append), the end of the wait for EOF
    /// at a random moment after the exit, and a sender that starts at a random moment (before, during, after all that)
    /// and takes random batches: every byte written before the exit arrives once, in order, then the exit.</summary>
    [Fact]
    public async Task Stress_every_byte_written_before_the_exit_arrives_once_in_order_whatever_the_interleaving()
    {
        const int Runs = 400;
        int seed = Environment.TickCount;
        for (int run = 0; run < Runs; run++)
        {
            var rnd = new Random(seed + run);
            int streams = rnd.Next(1, 3);
            int capacity = rnd.Next(1, 4) switch { 1 => rnd.Next(1, 64), 2 => rnd.Next(64, 2048), _ => 16 * 1024 };
            int pipeCap = rnd.Next(1, 4096);
            bool grandchild = rnd.Next(2) == 0;
            var sizes = Enumerable.Range(0, streams).Select(_ => rnd.Next(0, 3 * capacity + pipeCap + 10)).ToArray();
            var pipes = Enumerable.Range(0, streams).Select(_ => new FakePipe(pipeCap)).ToArray();
            var b = new OutputBuffer(capacity, streams, i => pipes[i].Pending);
            int readerSeed = rnd.Next(), senderDelay = rnd.Next(0, 4), graceDelay = rnd.Next(0, 4);

            var readers = Enumerable.Range(0, streams).Select(i => new Thread(() =>
            {
                var r = new Random(readerSeed + i);
                var kind = (StreamKind)i;
                var buf = new byte[512];
                while (pipes[i].WaitReadable())
                {
                    if (r.Next(64) == 0) Thread.Sleep(1); // a reader not run at once
                    int allowed = b.Reserve(kind, r.Next(1, buf.Length + 1));
                    int n = pipes[i].Read(buf.AsSpan(0, allowed));
                    if (n == 0)
                    {
                        b.Unreserve(kind, allowed);
                        break;
                    }
                    b.Append(kind, buf.AsSpan(0, n), allowed);
                }
                b.StreamEnded(kind);
            }) { IsBackground = true }).ToArray();
            foreach (var t in readers) t.Start();

            var process = new Thread(() =>
            {
                var r = new Random(readerSeed ^ 0x5a5a);
                var left = sizes.ToArray();
                var written = new int[streams];
                while (left.Any(x => x > 0))
                {
                    int i = r.Next(streams);
                    int n = Math.Min(left[i], r.Next(1, 700));
                    pipes[i].Write(Bytes(n, written[i] + 1000 * i));
                    written[i] += n;
                    left[i] -= n;
                }
                if (!grandchild)
                    foreach (var p in pipes) p.Close();
                b.SetExit(new Exited { ExitCode = 7 });
                if (graceDelay > 0) Thread.Sleep(graceDelay - 1);
                b.ForceDone();
            }) { IsBackground = true };
            process.Start();
            try
            {
                if (senderDelay > 0) Thread.Sleep(senderDelay - 1);
                var got = Enumerable.Range(0, streams).Select(_ => new List<byte>()).ToArray();
                var slices = new List<OutputBuffer.Slice>();
                long pos = 0;
                Exited? exit = null;
                var deadline = DateTime.UtcNow.AddSeconds(20);
                while (exit == null)
                {
                    var snap = b.Take(pos, rnd.Next(1, 3 * capacity + 2), slices);
                    Assert.False(snap.Missed, $"run {run} (seed {seed}): bytes evicted unsent at {pos}");
                    foreach (var s in slices)
                    {
                        Assert.Equal(pos, s.Offset);
                        got[(int)s.Stream].AddRange(s.Data.ToArray());
                        pos += s.Data.Length;
                    }
                    Assert.Equal(pos, snap.NewPosition);
                    if (slices.Count > 0) b.MarkSent(pos);
                    exit = snap.Exit;
                    if (exit == null && slices.Count == 0)
                        Assert.True(await Task.WhenAny(snap.Changed, Task.Delay(TimeSpan.FromSeconds(Math.Max(0.1, (deadline - DateTime.UtcNow).TotalSeconds)))) == snap.Changed,
                            $"run {run} (seed {seed}): no exit and no output after {pos} bytes; streams {streams}, capacity {capacity}, " +
                            $"pipe {pipeCap}, grandchild {grandchild}, sizes {string.Join('/', sizes)}");
                    // the end of the output runs a waiting sender on the thread that saw it (the agent's send loop never
                    // blocks there); this one goes on to join that thread below, so it leaves it first
                    await Task.Yield();
                }
                Assert.Equal(7, exit.ExitCode);
                for (int i = 0; i < streams; i++)
                {
                    var want = Bytes(sizes[i], 1000 * i);
                    Assert.True(want.AsSpan().SequenceEqual(got[i].ToArray()),
                        $"run {run} (seed {seed}): stream {i} got {got[i].Count} of {sizes[i]} bytes or others; capacity {capacity}, " +
                        $"pipe {pipeCap}, grandchild {grandchild}, sender after {senderDelay - 1} ms, grace after {graceDelay - 1} ms");
                }
            }
            finally
            {
                // the readers of a grandchild's pipes wait for more: stop them (and everything, after a failure)
                foreach (var p in pipes) p.Abort();
                b.Discard();
            }
            Assert.True(process.Join(5000));
            foreach (var t in readers) Assert.True(t.Join(5000));
        }
    }
}
