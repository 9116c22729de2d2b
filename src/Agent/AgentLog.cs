using System.Text;

namespace Garden.Agent;

/// <summary>One line per significant step, appended to the log file (runc gives the agent /dev/null as stdout).</summary>
internal static class AgentLog
{
    private static readonly Lock Gate = new();
    private static FileStream? _file;

    public static void Open(string path)
    {
        try
        {
            _file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 1);
        }
        catch (Exception e)
        {
            // no log is not fatal
            Console.Error.WriteLine($"garden-agent: cannot open log {path}: {e.Message}");
        }
    }

    public static void OpenFd(int fd)
    {
        try
        {
            _file = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle((IntPtr)fd, ownsHandle: true), FileAccess.Write, 1);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"garden-agent: cannot use log fd {fd}: {e.Message}");
        }
    }

    public static void Info(string message) => Write("INFO", message);

    public static void Warn(string message) => Write("WARN", message);

    public static void Error(string message) => Write("ERROR", message);

    private static void Write(string level, string message)
    {
        var f = _file;
        if (f == null) return;
        var line = Encoding.UTF8.GetBytes($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {level} {message}\n");
        lock (Gate)
        {
            try
            {
                f.Write(line);
            }
            catch
            {
                // the log must never take the agent down
            }
        }
    }
}
