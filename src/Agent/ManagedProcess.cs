using System.Threading.Channels;
using Garden.Protocol.Agent;

namespace Garden.Agent;

/// <summary>One process the agent started: its output buffer, its stdin, its pty, and its exit status.</summary>
internal sealed class ManagedProcess
{
    private const int ReadSize = 64 * 1024;

    private readonly Fd? _ptyMaster;   // kept for resize (tty only)
    private readonly Channel<(ReadOnlyMemory<byte> Data, bool Close)>? _stdin;
    private int _stdinClosed;

    public ManagedProcess(string id, int pid, bool tty, int bufferBytes, Fd? stdinWrite, Fd? ptyMaster, Fd[] outputs)
    {
        Id = id;
        Pid = pid;
        Tty = tty;
        _ptyMaster = ptyMaster;
        Output = new OutputBuffer(bufferBytes, outputs.Length);

        for (int i = 0; i < outputs.Length; i++)
        {
            var fd = outputs[i];
            var kind = i == 0 ? StreamKind.Stdout : StreamKind.Stderr;
            var t = new Thread(() => ReadLoop(fd, kind), 256 * 1024) { IsBackground = true, Name = $"out-{id}-{i}" };
            t.Start();
        }

        if (stdinWrite != null)
        {
            _stdin = Channel.CreateBounded<(ReadOnlyMemory<byte>, bool)>(new BoundedChannelOptions(16) { SingleReader = true });
            var t = new Thread(() => StdinLoop(stdinWrite), 256 * 1024) { IsBackground = true, Name = $"in-{id}" };
            t.Start();
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
        AgentLog.Info($"process {Id} pid {Pid} exited code {exit.ExitCode} signal {exit.Signal}");
        Output.SetExit(exit);
        if (Output.StreamsOpen)
        {
            // a background grandchild may hold the pipe open: don't make attachers wait forever
            _ = Task.Delay(1000).ContinueWith(_ => Output.ForceDone(), TaskScheduler.Default);
        }
        CloseStdin();
    }

    public async ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, bool close, CancellationToken ct)
    {
        if (_stdin == null || Volatile.Read(ref _stdinClosed) != 0) return;
        try
        {
            if (data.Length > 0) await _stdin.Writer.WriteAsync((data, false), ct);
            if (close) CloseStdin();
        }
        catch (ChannelClosedException)
        {
        }
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

    private unsafe void ReadLoop(Fd fd, StreamKind kind)
    {
        var buf = new byte[ReadSize];
        try
        {
            while (true)
            {
                // wait for data before reserving room: an idle stream (often stderr) must not hold buffer space
                int perr = Native.WaitReadable(fd.Value);
                if (perr != 0) throw new IOException($"poll: {Native.ErrorText(perr)}");
                int allowed = Output.Reserve(ReadSize);
                long n;
                fixed (byte* p = buf) n = Native.Read(fd.Value, p, allowed);
                if (n <= 0)
                {
                    // 0: EOF; EIO: pty slave closed
                    Output.Unreserve(allowed);
                    break;
                }
                Output.Append(kind, buf.AsSpan(0, (int)n), allowed);
            }
        }
        catch (Exception e)
        {
            AgentLog.Error($"process {Id} output reader: {e}");
        }
        finally
        {
            fd.Dispose();
            Output.StreamEnded();
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
                    if (item.Data.Length > 0)
                    {
                        long r;
                        fixed (byte* p = item.Data.Span) r = Native.WriteAll(fd.Value, p, item.Data.Length);
                        if (r < 0)
                        {
                            // EPIPE: the process closed its stdin; drop the rest
                            Volatile.Write(ref _stdinClosed, 1);
                            return;
                        }
                    }
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
        }
    }
}
