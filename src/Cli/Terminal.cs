using System.Runtime.InteropServices;

namespace Garden.Cli;

/// <summary>The few libc calls the CLI needs: raw stdin reads, isatty and the window size.
/// The CLI is a standalone AOT host binary and cannot reference src/Linux, so they live here.</summary>
internal static partial class Terminal
{
    private const int StdinFd = 0;
    private const int StdoutFd = 1;
    private const nuint TIOCGWINSZ = 0x5413;
    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const int EPIPE = 32;

    [StructLayout(LayoutKind.Sequential)]
    private struct WinSize
    {
        public ushort Rows, Cols, XPixel, YPixel;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int isatty(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int ioctl(int fd, nuint request, WinSize* size);

    public static bool StdoutIsTerminal => isatty(StdoutFd) == 1;

    public static bool StdinIsTerminal => isatty(StdinFd) == 1;

    // struct termios is 60 bytes on Linux/glibc; a larger buffer leaves room to spare.
    private const int TermiosSize = 128;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int tcgetattr(int fd, byte* termios);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int tcsetattr(int fd, int when, byte* termios);

    [LibraryImport("libc")]
    private static unsafe partial void cfmakeraw(byte* termios);

    /// <summary>Puts the terminal on stdin in raw mode (keys go to the process as typed, ^C included) until disposed;
    /// null when stdin is not a terminal.</summary>
    public static unsafe IDisposable? RawStdin()
    {
        if (!StdinIsTerminal) return null;
        var saved = new byte[TermiosSize];
        var raw = new byte[TermiosSize];
        fixed (byte* s = saved, r = raw)
        {
            if (tcgetattr(StdinFd, s) != 0) return null;
            Buffer.MemoryCopy(s, r, TermiosSize, TermiosSize);
            cfmakeraw(r);
            if (tcsetattr(StdinFd, 0, r) != 0) return null;
        }
        return new Restore(saved);
    }

    private sealed class Restore(byte[] saved) : IDisposable
    {
        private int _done;

        public unsafe void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 1) return;
            fixed (byte* s = saved) tcsetattr(StdinFd, 0, s);
        }
    }

    /// <summary>Rows and columns of the terminal on stdout; 24x80 when stdout is not a terminal.</summary>
    public static unsafe (uint Rows, uint Cols) WindowSize()
    {
        WinSize ws;
        if (isatty(StdoutFd) == 1 && ioctl(StdoutFd, TIOCGWINSZ, &ws) == 0 && ws.Rows > 0 && ws.Cols > 0)
            return (ws.Rows, ws.Cols);
        return (24, 80);
    }

    /// <summary>One read(2) from fd 0: the byte count, 0 at EOF. Throws IOException when stdin is closed or unreadable.</summary>
    public static unsafe int ReadStdin(Span<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                nint n = read(StdinFd, p, (nuint)buffer.Length);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR) continue;
                throw new IOException($"read(stdin) failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
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
                nint n = write(fd, p + done, (nuint)(data.Length - done));
                if (n >= 0) { done += (int)n; continue; }
                int errno = Marshal.GetLastPInvokeError();
                if (errno == EINTR) continue;
                if (errno == EAGAIN) { Thread.Sleep(1); continue; }   // a non-blocking fd inherited from the caller
                if (errno == EPIPE) return;
                throw new IOException($"write(fd {fd}) failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
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
