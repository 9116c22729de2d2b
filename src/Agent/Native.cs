using System.Runtime.InteropServices;

namespace Garden.Agent;

/// <summary>The agent's native calls into native/spawn.c (statically linked as "gardenspawn"); libc's own calls and its
/// constants (errno, O_*) come from Tmds.LibC.</summary>
internal static unsafe partial class Native
{
    private const string Lib = "gardenspawn";

    /// <summary>glibc's mallopt (statically linked): M_ARENA_MAX is -8.</summary>
    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int param, int value);

    /// <summary>One malloc arena for the whole agent instead of one per thread that ever called malloc (up to 8 per core): a
    /// few KiB of private memory each, and the agent's native allocations are few and rarely concurrent.</summary>
    public static void OneMallocArena() => MallOpt(-8, 1);

    internal enum Stage
    {
        None = 0,
        Setup = 1,
        Rlimit = 2,
        Creds = 3,
        Chdir = 4,
        Exec = 5,
        Cgroup = 6,
        Pids = 7,
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct SpawnReq
    {
        public byte* Path;
        public byte** Argv;
        public byte** Envp;
        public byte* Dir;
        public int StdinFd;
        public int StdoutFd;
        public int StderrFd;
        public int TtyFd;
        public int SetCreds;
        public uint Uid;
        public uint Gid;
        public int NGroups;
        public uint* Groups;
        public int NRlimits;
        public int* RlResource;
        public ulong* RlSoft;
        public ulong* RlHard;
        public ushort Rows;
        public ushort Cols;
        public int CgroupProcsFd;
        public int PidsCurrentFd;
        public int PidsMaxFd;
        public int MemoryProcsFd;
        public int KeepOomScore;
    }

    /// <summary>What <see cref="SpawnerSpawn"/> returns when nothing was started: the direct path (<see cref="Spawn"/>) takes it.</summary>
    internal const int SpawnerUseDirect = -1;

    [LibraryImport(Lib, EntryPoint = "gardenspawn_open_cgroup")]
    internal static partial int OpenCgroup(int dirfd, out int procs, out int current, out int max);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_check_dir")]
    internal static partial int CheckDir(int fd);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_file_version", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int FileVersion(string path, ulong* out6);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_set_not_dumpable")]
    internal static partial int SetNotDumpable();

    /// <summary>1 when the constructor installed the seccomp filter handed over with --seccomp-fd (native/spawn.c).</summary>
    [LibraryImport(Lib, EntryPoint = "gardenspawn_seccomp_installed")]
    internal static partial int SeccompInstalled();

    [LibraryImport(Lib, EntryPoint = "gardenspawn_get_dumpable")]
    internal static partial int GetDumpable();

    [LibraryImport(Lib, EntryPoint = "gardenspawn_stdio_to_devnull")]
    internal static partial int StdioToDevNull();

    [LibraryImport(Lib, EntryPoint = "gardenspawn_make_dir", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int MakeDir(string path, uint uid, uint gid);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_spawn")]
    internal static partial int Spawn(SpawnReq* req, out int pid, out int stage);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_socketpair")]
    internal static partial int SocketPair(out int agentEnd, out int spawnerEnd);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_spawner_spawn")]
    internal static partial int SpawnerSpawn(int sock, int spawnerPidfd, SpawnReq* req, int timeoutMs, out int pid, out int stage, out int discard);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_take_early_spawner")]
    internal static partial void TakeEarlySpawner(out int sock, out int pid);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_pidfd_open")]
    internal static partial int PidfdOpen(int pid);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_openpty")]
    internal static partial int OpenPty(out int master, out int slave, ushort rows, ushort cols);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_set_winsize")]
    internal static partial int SetWinsize(int fd, ushort rows, ushort cols);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_init_signals")]
    internal static partial void InitSignals();

    [LibraryImport(Lib, EntryPoint = "gardenspawn_dup")]
    internal static partial int Dup(int fd);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_waitany")]
    internal static partial int WaitAny(out int status, out int errno);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_pipe")]
    internal static partial int Pipe(out int readFd, out int writeFd);

    /// <summary>Blocks until fd is readable: 0 when there is input, -1 when there is nothing to read (EOF, hang-up,
    /// error), or errno.</summary>
    [LibraryImport(Lib, EntryPoint = "gardenspawn_wait_readable")]
    internal static partial int WaitReadable(int fd);

    /// <summary>Bytes waiting in a pipe or pty (FIONREAD), or -errno.</summary>
    [LibraryImport(Lib, EntryPoint = "gardenspawn_pending")]
    internal static partial int Pending(int fd);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_read")]
    internal static partial long Read(int fd, byte* buf, long len);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_write_all")]
    internal static partial long WriteAll(int fd, byte* buf, long len);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_close")]
    internal static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_open_devnull")]
    internal static partial int OpenDevNull(int write);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_kill")]
    internal static partial int Kill(int pid, int sig);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_ensure_std_fds")]
    internal static partial void EnsureStdFds();

    [LibraryImport(Lib, EntryPoint = "gardenspawn_set_pipe_size")]
    internal static partial int SetPipeSize(int fd, int size);

    [LibraryImport(Lib, EntryPoint = "gardenspawn_strerror")]
    private static partial int StrError(int err, byte* buf, int len);

    internal static string ErrorText(int errno)
    {
        byte* buf = stackalloc byte[256];
        int n = StrError(errno, buf, 256);
        return new string((sbyte*)buf, 0, n);
    }
}

/// <summary>An owned file descriptor (pipe end, pty side, directory or file of the file tools); closed once.</summary>
internal sealed class Fd : SafeHandle
{
    public Fd(int fd) : base(new IntPtr(-1), ownsHandle: true) => SetHandle(new IntPtr(fd));

    public override bool IsInvalid => handle.ToInt64() < 0;

    public int Value => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => Native.Close((int)handle.ToInt64()) == 0;
}
