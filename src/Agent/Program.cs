using System.Net.Sockets;
using System.Runtime.InteropServices;

[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

namespace Garden.Agent;

/// <summary>garden-agent [--socket PATH] [--log PATH]: PID 1 of a container; serves the daemon on a Unix socket.
/// garden-agent stream-in DEST | stream-out PATH: the file tools (<see cref="Tar.TarTool"/>).</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        // the file tools: the daemon runs this binary as an ordinary process of the container
        if (Tar.TarTool.IsTool(args)) return Tar.TarTool.Run(args);
        string socketPath = "/.garden/run/agent.sock";
        string logPath = "/.garden/run/agent.log";
        int listenFd = -1, logFd = -1, cgroupFd = -1;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--socket" when i + 1 < args.Length:
                    socketPath = args[++i];
                    break;
                case "--log" when i + 1 < args.Length:
                    logPath = args[++i];
                    break;
                // gardend binds the socket on the host and hands it over as an fd (runc --preserve-fds):
                // nothing inside the container can reach or replace it.
                case "--listen-fd" when i + 1 < args.Length && int.TryParse(args[i + 1], out var lfd):
                    listenFd = lfd;
                    i++;
                    break;
                case "--log-fd" when i + 1 < args.Length && int.TryParse(args[i + 1], out var gfd):
                    logFd = gfd;
                    i++;
                    break;
                case "--cgroup-fd" when i + 1 < args.Length && int.TryParse(args[i + 1], out var cfd):
                    cgroupFd = cfd;
                    i++;
                    break;
                case "--version":
                    Console.WriteLine($"garden-agent {Server.Version}");
                    return 0;
                default:
                    Console.Error.WriteLine("usage: garden-agent [--socket PATH | --listen-fd N] [--log PATH | --log-fd N] [--cgroup-fd N]");
                    return 2;
            }
        }

        Native.EnsureStdFds();
        Native.InitSignals();
        if (logFd >= 0) AgentLog.OpenFd(logFd);
        else AgentLog.Open(logPath);
        AgentLog.Info($"garden-agent {Server.Version} starting: pid {Environment.ProcessId}, " +
            (listenFd >= 0 ? $"listening socket fd {listenFd}" : $"socket {socketPath}"));

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnTerminate);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnTerminate);

        var table = new ProcessTable();
        table.StartReaper();

        Socket listener;
        if (listenFd >= 0)
        {
            listener = new Socket(new SafeSocketHandle((IntPtr)listenFd, ownsHandle: true));
        }
        else try
        {
            // a stale socket from an earlier agent would make bind fail
            if (File.Exists(socketPath)) File.Delete(socketPath);
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            listener.Listen(512);
        }
        catch (Exception e)
        {
            AgentLog.Error($"cannot listen on {socketPath}: {e.Message}");
            Console.Error.WriteLine($"garden-agent: cannot listen on {socketPath}: {e.Message}");
            return 1;
        }
        AgentLog.Info($"listening on {socketPath}");

        ProcessCgroup? cgroup = null;
        if (cgroupFd >= 0)
        {
            try
            {
                cgroup = ProcessCgroup.Open(cgroupFd);
            }
            catch (IOException e)
            {
                AgentLog.Error(e.Message);
                Console.Error.WriteLine($"garden-agent: {e.Message}");
                return 1;
            }
        }

        var server = new Server(table, new Spawner(table, cgroup));
        server.RunAsync(listener).GetAwaiter().GetResult();
        return 0;
    }

    private static void OnTerminate(PosixSignalContext ctx)
    {
        AgentLog.Info($"{ctx.Signal}: exiting");
        ctx.Cancel = true;
        Environment.Exit(0);
    }
}
