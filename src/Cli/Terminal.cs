using System.Runtime.InteropServices;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Garden.Cli;

/// <summary>The few libc calls the CLI needs: raw stdin reads, isatty and the window size. Tmds.LibC has them, with
/// their constants and structs; only cfmakeraw(3), which it lacks, is imported here. (The CLI is a standalone AOT
/// host binary and does not reference src/Linux.)</summary>
internal static partial class Terminal
{
    private const int StdinFd = 0;
    private const int StdoutFd = 1;

    [LibraryImport("libc")]
    private static unsafe partial void cfmakeraw(termios* termios);

    public static bool StdoutIsTerminal => isatty(StdoutFd) == 1;

    public static bool StdinIsTerminal => isatty(StdinFd) == 1;

    /// <summary>Puts the terminal on stdin in raw mode (keys go to the process as typed, ^C included) until disposed;
    /// null when stdin is not a terminal.</summary>
    public static unsafe IDisposable? RawStdin()
    {
        if (!StdinIsTerminal) return null;
        termios saved, raw;
        if (tcgetattr(StdinFd, &saved) != 0) return null;
        raw = saved;
        cfmakeraw(&raw);
        if (tcsetattr(StdinFd, (int)TCSANOW, &raw) != 0) return null;
        return new Restore(saved);
    }

    private sealed class Restore(termios saved) : IDisposable
    {
        private int _done;

        public unsafe void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 1) return;
            var s = saved;
            tcsetattr(StdinFd, (int)TCSANOW, &s);
        }
    }

    /// <summary>Rows and columns of the terminal on stdout; 24x80 when stdout is not a terminal.</summary>
    public static unsafe (uint Rows, uint Cols) WindowSize()
    {
        winsize ws;
        if (isatty(StdoutFd) == 1 && ioctl(StdoutFd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
            return (ws.ws_row, ws.ws_col);
        return (24, 80);
    }

    /// <summary>One read(2) from fd 0: the byte count, 0 at EOF. Throws IOException when stdin is closed or unreadable.</summary>
    public static unsafe int ReadStdin(Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                long n = read(StdinFd, p, buffer.Length);
                if (n >= 0) return (int)n;
                int err = errno;
                if (err == EINTR) continue;
                throw new IOException($"read(stdin) failed: {Marshal.GetPInvokeErrorMessage(err)}", err);
            }
        }
    }

    /// <summary>Writes all of <paramref name="data"/> to fd 1 or 2 with write(2). System.Console is avoided on
    /// purpose: its terminal initialisation emits escape sequences (keypad mode) into the process's output.
    /// A reader that went away (EPIPE) is not an error: the rest is dropped, as `cat` would be killed.</summary>
    public static unsafe void Write(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                long n = write(fd, p + done, data.Length - done);
                if (n >= 0) { done += (int)n; continue; }
                int err = errno;
                if (err == EINTR) continue;
                if (err == EAGAIN) { Thread.Sleep(1); continue; }   // a non-blocking fd inherited from the caller
                if (err == EPIPE) return;
                throw new IOException($"write(fd {fd}) failed: {Marshal.GetPInvokeErrorMessage(err)}", err);
            }
        }
    }
}

/// <summary>An unbuffered write-only stream over fd 1 or 2 (see <see cref="Terminal.Write"/>).</summary>
internal sealed class FdStream(int fd) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => Terminal.Write(fd, buffer.AsSpan(offset, count));
    public override void Write(ReadOnlySpan<byte> buffer) => Terminal.Write(fd, buffer);
}
