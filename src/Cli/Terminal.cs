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
    private static unsafe partial int ioctl(int fd, nuint request, WinSize* size);

    public static bool StdoutIsTerminal => isatty(StdoutFd) == 1;

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
}
