using System.Threading.Channels;
using Garden.Protocol.Agent;

namespace Garden.Agent;

/// <summary>One process the agent started: its output buffer, its stdin, its pty, and its exit status.</summary>
internal sealed class ManagedProcess
{
    private const int ReadSize = 64 * 1024;

    /// <summary>Stdin pieces queued for the process at most (each up to a frame: 256 KiB from gardend's file transfers).</summary>
    private const int StdinQueue = 8;

    /// <summary>Stdin pieces at least this big are copied into a reused buffer of <see cref="StdinBufferBytes"/>; smaller
    /// ones (a terminal's keystrokes) into an array of their own size.</summary>
    private const int StdinPooledMin = 16 * 1024;
    private const int StdinBufferBytes = 256 * 1024;

    private readonly Fd? _ptyMaster;   // kept for resize (tty only)
    private readonly Channel<(byte[] Buffer, int Length)>? _stdin;
    private readonly Stack<byte[]> _stdinSpare = new(); // at most StdinQueue + 1 buffers, only while stdin streams
    private readonly Fd[] _outputs;  // the output pipes (or the pty master), each closed by its reader at its end
    private int _stdinClosed;

    public ManagedProcess(string id, int pid, bool tty, int bufferBytes, Fd? stdinWrite, Fd? ptyMaster, Fd[] outputs)
    {
        Id = id;
        Pid = pid;
        Tty = tty;
        _ptyMaster = ptyMaster;
        _outputs = outputs;
        Output = new OutputBuffer(bufferBytes, outputs.Length, Pending);

        for (int i = 0; i < outputs.Length; i++)
        {
            var fd = outputs[i];
            var kind = i == 0 ? StreamKind.Stdout : StreamKind.Stderr;
            Workers.Run(() => ReadLoop(fd, kind));
        }

        if (stdinWrite != null)
        {
            _stdin = Channel.CreateBounded<(byte[], int)>(new BoundedChannelOptions(StdinQueue) { SingleReader = true });
            Workers.Run(() => StdinLoop(stdinWrite));
        }
        else
        {
            _stdinClosed = 1;
        }
    }

    public string Id { get; }

    public int Pid { get; }

    public bool Tty { get; }

    public OutputBuffer Output { get; }

    /// <summary>Output a process keeps once its exit was reported and nobody streams it: the last 64 KiB of what was
    /// delivered, or up to 256 KiB that nobody has read (see <see cref="OutputBuffer.KeepTail"/>).</summary>
    public const int RetainDelivered = 64 * 1024;
    public const int RetainUnsent = 256 * 1024;

    // Kept by ProcessTable under its gate: connections streaming this process, whether its exit reached the daemon
    // (a stream delivered Exited, or a List answer carried it), and whether it moved to the table's recent exits.
    internal int Streams;
    internal bool ExitReported;
    internal bool Retired;
    internal bool Forgotten;

    /// <summary>This process as a List entry; <paramref name="reported"/>: its exit was reported before this answer.</summary>
    public ProcessEntry ToEntry(bool reported)
    {
        var exit = Output.Exit;
        return new ProcessEntry
        {
            Id = Id, Pid = Pid, Exited = exit != null, Exit = exit, OutputEnd = (ulong)Output.End, Tty = Tty,
            ExitReported = exit != null && reported,
        };
    }

    /// <summary>Called by the reaper with the raw wait status.</summary>
    public void OnReaped(int status)
    {
        int termSig = status & 0x7f;
        var exit = termSig == 0
            ? new Exited { ExitCode = (status >> 8) & 0xff }
            : new Exited { ExitCode = 128 + termSig, Signal = termSig };
        // first: a stream whose output is complete writes Exited from here (OutputBuffer.Change)
        Output.SetExit(exit);
        AgentLog.Info($"process {Id} pid {Pid} exited code {exit.ExitCode} signal {exit.Signal}");
        if (Output.StreamsOpen)
        {
            // a background grandchild may hold the pipe open: don't make attachers wait forever
            _ = Task.Delay(1000).ContinueWith(_ => Output.ForceDone(), TaskScheduler.Default);
        }
        CloseStdin();
    }

    /// <summary>Queues a copy of data for the process's stdin (the caller's buffer is free when this returns, before
    /// the returned task completes); waits while the queue is full (backpressure on the connection).</summary>
    public ValueTask WriteStdinAsync(ReadOnlySpan<byte> data, bool close, CancellationToken ct)
    {
        if (_stdin == null || Volatile.Read(ref _stdinClosed) != 0) return ValueTask.CompletedTask;
        if (data.Length == 0)
        {
            if (close) CloseStdin();
            return ValueTask.CompletedTask;
        }
        var buffer = RentStdin(data.Length);
        data.CopyTo(buffer);
        return QueueStdinAsync(buffer, data.Length, close, ct);
    }

    private async ValueTask QueueStdinAsync(byte[] buffer, int length, bool close, CancellationToken ct)
    {
        try
        {
            await _stdin!.Writer.WriteAsync((buffer, length), ct);
            if (close) CloseStdin();
        }
        catch (ChannelClosedException)
        {
        }
    }

    private byte[] RentStdin(int length)
    {
        if (length < StdinPooledMin || length > StdinBufferBytes) return new byte[length];
        lock (_stdinSpare)
            if (_stdinSpare.TryPop(out var spare)) return spare;
        return new byte[StdinBufferBytes];
    }

    private void ReturnStdin(byte[] buffer)
    {
        if (buffer.Length != StdinBufferBytes) return;
        lock (_stdinSpare)
            if (_stdinSpare.Count <= StdinQueue) _stdinSpare.Push(buffer);
    }

    /// <summary>Closes the process's stdin after what was queued (for a tty: sends EOF).</summary>
    public void CloseStdin()
    {
        if (_stdin == null || Interlocked.Exchange(ref _stdinClosed, 1) != 0) return;
        _stdin.Writer.TryComplete();
    }

    public void Resize(uint rows, uint cols)
    {
        if (_ptyMaster == null || _ptyMaster.IsClosed) return;
        bool added = false;
        try
        {
            _ptyMaster.DangerousAddRef(ref added);
            Native.SetWinsize(_ptyMaster.Value, (ushort)Math.Min(rows, ushort.MaxValue), (ushort)Math.Min(cols, ushort.MaxValue));
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            if (added) _ptyMaster.DangerousRelease();
        }
    }

    /// <summary>Bytes waiting in output i's pipe; 0 once its reader closed it (it read EOF, or gave up).</summary>
    private long Pending(int i)
    {
        var fd = _outputs[i];
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return Math.Max(0, Native.Pending(fd.Value));
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
        finally
        {
            if (added) fd.DangerousRelease();
        }
    }

    private unsafe void ReadLoop(Fd fd, StreamKind kind)
    {
        try
        {
            while (true)
            {
                // wait for data before reserving room: an idle stream (often stderr) must not hold buffer space
                int perr = Native.WaitReadable(fd.Value);
                // nothing left to read (EOF, or a pty whose slave closed): no room reserved, no read buffer taken (a
                // process that wrote nothing, /bin/true, made each reader take a 64 KiB buffer just to read its EOF:
                // an allocation, the GC committing and zeroing it, on the exit's path of a container's first Run)
                if (perr == -1) break;
                if (perr != 0) throw new IOException($"poll: {Native.ErrorText(perr)}");
                int allowed = Output.Reserve(kind, ReadSize);
                // nor a read buffer: a process that writes nothing (a long sleep) costs its agent no 64 KiB per stream
                var buf = ReadBuffers.Rent();
                long n;
                fixed (byte* p = buf) n = Native.Read(fd.Value, p, allowed);
                if (n <= 0)
                {
                    // 0: EOF; EIO: pty slave closed
                    ReadBuffers.Return(buf);
                    Output.Unreserve(kind, allowed);
                    break;
                }
                Output.Append(kind, buf.AsSpan(0, (int)n), allowed);
                ReadBuffers.Return(buf);
            }
        }
        catch (Exception e)
        {
            AgentLog.Error($"process {Id} output reader: {e}");
        }
        finally
        {
            fd.Dispose();
            Output.StreamEnded(kind);
        }
    }

    private unsafe void StdinLoop(Fd fd)
    {
        try
        {
            var reader = _stdin!.Reader;
            while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                while (reader.TryRead(out var item))
                {
                    long r;
                    fixed (byte* p = item.Buffer) r = Native.WriteAll(fd.Value, p, item.Length);
                    if (r < 0)
                    {
                        // EPIPE: the process closed its stdin; drop the rest
                        Volatile.Write(ref _stdinClosed, 1);
                        return;
                    }
                    ReturnStdin(item.Buffer);
                }
            }
            if (Tty)
            {
                // a pty has no half-close: EOF is the VEOF character (^D) at the start of a line
                byte eof = 4;
                Native.WriteAll(fd.Value, &eof, 1);
            }
        }
        catch (Exception e)
        {
            AgentLog.Error($"process {Id} stdin writer: {e}");
        }
        finally
        {
            fd.Dispose();
            lock (_stdinSpare) _stdinSpare.Clear();
        }
    }

    /// <summary>The pipe readers' buffers, taken for one read each (Append copies what was read): a few kept for the
    /// next reads, dropped when the agent trims its memory (<see cref="MemoryTrim"/>).</summary>
    internal static class ReadBuffers
    {
        private const int Keep = 4;
        private static readonly Stack<byte[]> Spare = new();

        public static byte[] Rent()
        {
            lock (Spare)
                if (Spare.TryPop(out var b)) return b;
            return new byte[ReadSize];
        }

        public static void Return(byte[] buffer)
        {
            lock (Spare)
                if (Spare.Count < Keep) Spare.Push(buffer);
        }

        public static void Clear()
        {
            lock (Spare) Spare.Clear();
        }
    }
}
