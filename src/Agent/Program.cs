using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Garden.Agent;

/// <summary>garden-agent [--socket PATH | --listen-fd N] [--cgroup-fd N] [--memory-cgroup-fd N] [--seccomp-fd N]: PID 1 of a container; serves the daemon on a Unix
/// socket. garden-agent stream-in DEST | stream-out PATH: the file tools (<see cref="Tar.TarTool"/>).
/// Out of the container's reach: not dumpable (native/spawn.c clears it before the runtime starts), so no process in the
/// container may ptrace it, open or copy its descriptors through /proc/1/fd or pidfd_getfd, or read its memory; and it
/// holds no descriptor of a host file: its stdio goes to /dev/null once it runs, its log stays in memory until the daemon
/// takes it over the socket (<see cref="AgentLog"/>), and of the process cgroup it keeps only the directory.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        Native.OneMallocArena();
        // the file tools: the daemon runs this binary as an ordinary process of the container
        if (Tar.TarTool.IsTool(args)) return Tar.TarTool.Run(args);
        string socketPath = "/.garden/run/agent.sock";
        int listenFd = -1, cgroupFd = -1, memoryCgroupFd = -1;
        bool pea = false; // see s_pea
        bool seccompFilter = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--socket" when i + 1 < args.Length:
                    socketPath = args[++i];
                    break;
                // gardend binds the socket on the host and hands it over as an fd (runc --preserve-fds):
                // nothing inside the container can reach or replace it.
                case "--listen-fd" when i + 1 < args.Length && int.TryParse(args[i + 1], out var lfd):
                    listenFd = lfd;
                    i++;
                    break;
                case "--cgroup-fd" when i + 1 < args.Length && int.TryParse(args[i + 1], out var cfd):
                    cgroupFd = cfd;
                    i++;
                    break;
                // v1: the process cgroup in the memory hierarchy, where the memory limit is
                case "--memory-cgroup-fd" when i + 1 < args.Length && int.TryParse(args[i + 1], out var mfd):
                    memoryCgroupFd = mfd;
                    i++;
                    break;
                // the container's seccomp filter, installed by native/spawn.c's constructor before the runtime started
                // (the descriptor is closed by then): here only the check that it was
                case "--seccomp-fd" when i + 1 < args.Length:
                    seccompFilter = true;
                    i++;
                    break;
                // the init of a pea (a process with its own root, sharing its container's pid namespace): not PID 1
                case "--pea":
                    pea = s_pea = true;
                    break;
                case "--version":
                    Console.WriteLine($"garden-agent {Server.Version}");
                    return 0;
                default:
                    Console.Error.WriteLine("usage: garden-agent [--socket PATH | --listen-fd N] [--cgroup-fd N] [--memory-cgroup-fd N] [--seccomp-fd N] [--pea]");
                    return 2;
            }
        }

        // Until stdio goes to /dev/null below, errors reach runc's log (the agent's stderr), which gardend reports when
        // a create fails.
        // the constructor ends the agent when it cannot install a filter it was handed; this is the check that it ran
        if (seccompFilter && Native.SeccompInstalled() != 1)
            return Fail("the container's seccomp filter was handed over (--seccomp-fd) but is not installed");
        if (Native.GetDumpable() != 0 && Native.SetNotDumpable() is var derr and not 0)
            return Fail($"cannot make the agent non-dumpable: {Native.ErrorText(derr)}");
        Native.EnsureStdFds();
        Native.InitSignals();

        HostRoot hostRoot;
        try
        {
            hostRoot = HostRoot.Detect();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail($"cannot tell how the host's root appears here: {e.Message}");
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnTerminate);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnTerminate);

        Socket listener;
        if (listenFd >= 0)
        {
            listener = new Socket(new SafeSocketHandle((IntPtr)listenFd, ownsHandle: true));
            socketPath = $"fd {listenFd}";
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
            return Fail($"cannot listen on {socketPath}: {e.Message}");
        }

        ProcessCgroup? cgroup = null, memoryCgroup = null;
        if (cgroupFd >= 0 || memoryCgroupFd >= 0)
        {
            try
            {
                if (cgroupFd >= 0) cgroup = ProcessCgroup.Open(cgroupFd);
                if (memoryCgroupFd >= 0) memoryCgroup = ProcessCgroup.Open(memoryCgroupFd);
            }
            catch (IOException e)
            {
                return Fail(e.Message);
            }
        }

        // runc's stdout and stderr (a host file) are of no use from here on, and must not stay reachable through PID 1
        if (Native.StdioToDevNull() is var serr and not 0)
            return Fail($"cannot point stdin, stdout and stderr at /dev/null: {Native.ErrorText(serr)}");

        AgentLog.Info($"garden-agent {Server.Version} starting: pid {Environment.ProcessId}, listening on {socketPath}, " +
            $"serving uid {hostRoot.Uid} from outside the container");

        var table = new ProcessTable();
        var spawner = new Spawner(table, cgroup, memoryCgroup);
        // the fork server in the work cgroups (forked before the runtime started, or started now), so its one cgroup
        // move is not on a Run's path; before the reaper, which could otherwise reap its pid before it is adopted
        spawner.AdoptOrStartSpawner();
        table.StartReaper();
        var server = new Server(table, spawner, hostRoot, pea);
        server.RunAsync(listener).GetAwaiter().GetResult();
        return 0;
    }

    private static int Fail(string message)
    {
        AgentLog.Error(message);
        Console.Error.WriteLine($"garden-agent: {message}");
        return 1;
    }

    /// <summary>A pea's agent lives until gardend releases the pea (SIGKILL): a TERM to every process of its container (a
    /// Stop, kill(-1) from the container's agent) must not take its process's exit report away with it.</summary>
    private static bool s_pea;

    private static void OnTerminate(PosixSignalContext ctx)
    {
        if (s_pea)
        {
            ctx.Cancel = true;
            return;
        }
        AgentLog.Info($"{ctx.Signal}: exiting");
        ctx.Cancel = true;
        Environment.Exit(0);
    }
}
