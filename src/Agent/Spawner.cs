using System.Runtime.InteropServices;
using System.Text;
using Garden.Protocol.Agent;
using Tmds.Linux;

namespace Garden.Agent;

/// <summary>Turns a SpawnRequest into a running <see cref="ManagedProcess"/>: user, env, dir, rlimits, pipes or pty.
/// <paramref name="memoryCgroup"/>: on cgroup v1 the process cgroup of the memory hierarchy, which each process joins too.</summary>
internal sealed class Spawner(ProcessTable table, ProcessCgroup? cgroup = null, ProcessCgroup? memoryCgroup = null)
{
    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    /// <summary>Garden's PATH for every user but root: no sbin directories.</summary>
    public const string UserPath = "/usr/local/bin:/usr/bin:/bin";
    public const int DefaultBufferBytes = 1024 * 1024;

    public ManagedProcess Spawn(SpawnRequest req)
    {
        if (string.IsNullOrEmpty(req.Id)) throw new AgentErrorException(ErrorCode.Invalid, "spawn: id is empty");
        if (string.IsNullOrEmpty(req.Path)) throw new AgentErrorException(ErrorCode.Invalid, "spawn: path is empty");
        if (table.Contains(req.Id)) throw new AgentErrorException(ErrorCode.AlreadyExists, $"process {req.Id} already exists");

        var creds = Users.Resolve(req.User);
        var env = BuildEnv(req.Env, creds);
        string path = ResolvePath(req.Path, env);
        string dir = req.Dir;
        if (string.IsNullOrEmpty(dir)) dir = Directory.Exists(creds.Home) ? creds.Home : "/";
        else MakeWorkingDirectory(dir, creds);

        var rlimits = req.Rlimits.Select(r => (Resource: Rlimits.Resource(r.Name), r.Soft, r.Hard)).ToArray();
        int bufferBytes = req.BufferBytes > 0 ? (int)Math.Min(req.BufferBytes, 1u << 30) : DefaultBufferBytes;

        // fds: the parent's ends are CLOEXEC; the child's ends are dup2'ed to 0,1,2
        var parentEnds = new List<Fd>();
        var childEnds = new List<Fd>();
        Fd? stdinWrite = null, ptyMaster = null;
        Fd[] outputs;
        int childIn, childOut, childErr, ttyFd = -1;
        try
        {
            if (req.Tty)
            {
                Check(Native.OpenPty(out int master, out int slave, (ushort)req.Rows, (ushort)req.Cols), "openpty");
                ptyMaster = new Fd(master);
                var slaveFd = new Fd(slave);
                childEnds.Add(slaveFd);
                childIn = childOut = childErr = ttyFd = slave;
                outputs = [ptyMaster];
                int dup = Native.Dup(master);
                if (dup < 0) Check(-dup, "dup");
                stdinWrite = new Fd(dup);
                if (!req.KeepStdin)
                {
                    // nothing will ever be typed; the stdin writer sends EOF at once
                }
            }
            else
            {
                var (outR, outW) = NewPipe();
                var (errR, errW) = NewPipe();
                parentEnds.Add(outR);
                parentEnds.Add(errR);
                childEnds.Add(outW);
                childEnds.Add(errW);
                childOut = outW.Value;
                childErr = errW.Value;
                outputs = [outR, errR];
                if (req.KeepStdin)
                {
                    var (inR, inW) = NewPipe();
                    childEnds.Add(inR);
                    stdinWrite = inW;
                    childIn = inR.Value;
                }
                else
                {
                    int nul = Native.OpenDevNull(0);
                    if (nul < 0) Check(-nul, "open /dev/null");
                    var nulFd = new Fd(nul);
                    childEnds.Add(nulFd);
                    childIn = nul;
                }
            }

            int pid = ForkExec(req, creds, path, dir, env, rlimits, childIn, childOut, childErr, ttyFd, bufferBytes,
                stdinWrite, ptyMaster, outputs, out var process, out bool viaSpawner);
            AgentLog.Info($"process {req.Id} pid {pid} started {(viaSpawner ? "by the spawner" : "directly")}: {path} user {creds.Uid}:{creds.Gid} dir {dir} tty {req.Tty}");
            if (req.Tty && !req.KeepStdin) process.CloseStdin();
            return process;
        }
        catch
        {
            foreach (var fd in parentEnds) fd.Dispose();
            stdinWrite?.Dispose();
            ptyMaster?.Dispose();
            throw;
        }
        finally
        {
            foreach (var fd in childEnds) fd.Dispose();
        }
    }

    private unsafe int ForkExec(SpawnRequest req, Credentials creds, string path, string dir, List<string> env,
        (int Resource, ulong Soft, ulong Hard)[] rlimits, int childIn, int childOut, int childErr, int ttyFd, int bufferBytes,
        Fd? stdinWrite, Fd? ptyMaster, Fd[] outputs, out ManagedProcess process, out bool viaSpawner)
    {
        var argv = new List<string>(req.Args.Count + 1) { req.Path };
        argv.AddRange(req.Args);

        using var arena = new NativeArena();
        var r = new Native.SpawnReq
        {
            Path = arena.Str(path),
            Argv = arena.StrArray(argv),
            Envp = arena.StrArray(env),
            Dir = arena.Str(dir),
            StdinFd = childIn,
            StdoutFd = childOut,
            StderrFd = childErr,
            TtyFd = ttyFd,
            SetCreds = 1,
            Uid = creds.Uid,
            Gid = creds.Gid,
            NGroups = creds.Groups.Length,
            Groups = arena.Array(creds.Groups),
            NRlimits = rlimits.Length,
            RlResource = arena.Array(rlimits.Select(x => x.Resource).ToArray()),
            RlSoft = arena.Array(rlimits.Select(x => x.Soft).ToArray()),
            RlHard = arena.Array(rlimits.Select(x => x.Hard).ToArray()),
            Rows = (ushort)Math.Min(req.Rows, ushort.MaxValue),
            Cols = (ushort)Math.Min(req.Cols, ushort.MaxValue),
            CgroupProcsFd = -1,
            PidsCurrentFd = -1,
            PidsMaxFd = -1,
            MemoryProcsFd = -1,
        };

        lock (table.Gate)
        {
            if (table.Contains(req.Id)) throw new AgentErrorException(ErrorCode.AlreadyExists, $"process {req.Id} already exists");
            int err = SpawnerSpawnLocked(&r, out int pid, out int stage);
            viaSpawner = err != Native.SpawnerUseDirect;
            if (!viaSpawner) err = DirectSpawnLocked(&r, out pid, out stage);
            if (pid > 0) table.ChildForked();
            if (err != 0) throw SpawnError((Native.Stage)stage, err, path, dir, rlimits, argv, env);
            process = new ManagedProcess(req.Id, pid, req.Tty, bufferBytes, stdinWrite, ptyMaster, outputs);
            table.AddLocked(process);
            return pid;
        }
    }

    // ---- the spawner (native/spawn.c, spawner_main): the fork server in the work cgroups ----
    //
    // A Run used to move each new child into the container's work cgroups (pids, and memory on v1) before exec: on cgroup
    // v1 a move waits for an RCU grace period, ~10 ms and up to 77, most of a Run. The spawner is moved there once, when
    // it starts, and forks every process there: a child is born in its parent's cgroups. It has an mm of its own (the OOM
    // killer of the work memory cgroup may take it, never the agent with it): the first one is forked by the agent's ELF
    // constructor before the .NET runtime starts (spawner_fork_early) and moves itself while the Create goes on; a later
    // one is this binary exec'd again through the direct path, which is also what a spawn falls back to whenever the
    // spawner cannot serve it. A Run never
    // fails because the spawner died: container root may kill or stop it (it is not PID 1); the agent then notices EOF
    // or a timeout, kills it, runs that request directly, and starts another spawner on a later spawn, at most once a
    // second (a container killing it in a loop gets the direct path, not an agent busy restarting it).
    //
    // v2: the same spawner in the one work cgroup. clone3(CLONE_INTO_CGROUP) would need no spawner there, but the
    // container's seccomp filter answers clone3 with ENOSYS (it cannot look into clone3's flags), and the agent runs under
    // that filter: one design for both.

    /// <summary>How long the spawner may take to fork (to send the child's pid through the error pipe, or close it)
    /// before the agent takes it for stopped or stuck and kills it.</summary>
    internal const int SpawnerTimeoutMs = 2000;

    /// <summary>At most one spawner start per this long.</summary>
    internal const int SpawnerRestartMs = 1000;

    private Fd? _spawnerSock;
    private Fd? _spawnerPidfd;
    private int _spawnerPid;
    private long _spawnerStarted = long.MinValue;

    /// <summary>Takes over the spawner the agent's constructor forked before the runtime started (native/spawn.c,
    /// spawner_fork_early), if there is one; otherwise starts one off the Run path. Called before the reaper starts, so
    /// the first spawner's pid cannot have been reaped (and reused) before its pidfd is taken.</summary>
    public void AdoptOrStartSpawner()
    {
        Native.TakeEarlySpawner(out int sock, out int pid);
        if (sock >= 0)
        {
            var agentSock = new Fd(sock);
            int pidfd = Native.PidfdOpen(pid);
            if (pidfd >= 0)
            {
                lock (table.Gate)
                {
                    _spawnerSock = agentSock;
                    _spawnerPidfd = new Fd(pidfd);
                    _spawnerPid = pid;
                    _spawnerStarted = Environment.TickCount64;
                }
                table.ChildForked();
                AgentLog.Info($"spawner pid {pid} started");
                return;
            }
            // it exits on the EOF of its socket
            agentSock.Dispose();
            AgentLog.Error($"spawner: pidfd_open: {Native.ErrorText(-pidfd)}");
        }
        StartSpawnerInBackground();
    }

    /// <summary>Starts the spawner off the Run path: its one cgroup move is paid here.</summary>
    private void StartSpawnerInBackground() => ThreadPool.UnsafeQueueUserWorkItem(_ =>
    {
        try
        {
            lock (table.Gate) EnsureSpawnerLocked();
        }
        catch (Exception e)
        {
            AgentLog.Error($"spawner: {e.Message}");
        }
    }, null);

    /// <summary>Caller holds table.Gate. The spawner runs, or was started now; false when it cannot (then the direct path).</summary>
    private unsafe bool EnsureSpawnerLocked()
    {
        if (_spawnerSock is not null) return true;
        long now = Environment.TickCount64;
        if (_spawnerStarted != long.MinValue && now - _spawnerStarted < SpawnerRestartMs) return false;
        _spawnerStarted = now;

        Check(Native.SocketPair(out int agentEnd, out int spawnerEnd), "socketpair");
        var agentSock = new Fd(agentEnd);
        using var spawnerSock = new Fd(spawnerEnd);
        int nul = Native.OpenDevNull(1);
        if (nul < 0)
        {
            agentSock.Dispose();
            Check(-nul, "open /dev/null");
        }
        using var devNull = new Fd(nul);
        using var arena = new NativeArena();
        // its only descriptors: the socket as stdin, /dev/null as stdout and stderr; root of the container as the agent
        // is, in the agent's working directory, with the agent's oom_score_adj (the container's processes are likelier
        // victims), no environment. /proc/self/exe: the vfork child shares the agent's mm, so that is the agent's own
        // binary whatever a process of the container did to /.garden/agent.
        var r = new Native.SpawnReq
        {
            Path = arena.Str("/proc/self/exe"),
            Argv = arena.StrArray(["garden-spawner", "spawner"]),
            Envp = arena.StrArray([]),
            Dir = null,
            StdinFd = spawnerSock.Value,
            StdoutFd = devNull.Value,
            StderrFd = devNull.Value,
            TtyFd = -1,
            SetCreds = 0,
            KeepOomScore = 1,
        };
        int err = DirectSpawnLocked(&r, out int pid, out int stage);
        if (pid > 0) table.ChildForked();
        if (err != 0)
        {
            agentSock.Dispose();
            AgentLog.Error($"spawner: cannot start it (stage {(Native.Stage)stage}): {Native.ErrorText(err)}; processes start directly");
            return false;
        }
        int pidfd = Native.PidfdOpen(pid);
        if (pidfd < 0)
        {
            // without a pidfd it could not be killed safely later: it exits on the EOF of its socket
            agentSock.Dispose();
            AgentLog.Error($"spawner: pidfd_open: {Native.ErrorText(-pidfd)}; processes start directly");
            return false;
        }
        _spawnerSock = agentSock;
        _spawnerPidfd = new Fd(pidfd);
        _spawnerPid = pid;
        AgentLog.Info($"spawner pid {pid} started");
        return true;
    }

    /// <summary>Caller holds table.Gate. A spawn through the spawner; <see cref="Native.SpawnerUseDirect"/> when nothing
    /// was started and the direct path is to take it.</summary>
    private unsafe int SpawnerSpawnLocked(Native.SpawnReq* r, out int pid, out int stage)
    {
        pid = -1;
        stage = 0;
        bool running;
        try
        {
            running = EnsureSpawnerLocked();
        }
        catch (AgentErrorException e)
        {
            // (socketpair, /dev/null or the cgroup files failed): the direct path says what it says for this request
            AgentLog.Error($"spawner: cannot start it: {e.Message}");
            running = false;
        }
        if (!running) return Native.SpawnerUseDirect;
        int err = Native.SpawnerSpawn(_spawnerSock!.Value, _spawnerPidfd!.Value, r, SpawnerTimeoutMs, out pid, out stage, out int discard);
        if (discard == 2) AgentLog.Error($"spawner pid {_spawnerPid} refused a request as malformed; it starts directly");
        else if (discard != 0)
        {
            AgentLog.Info($"spawner pid {_spawnerPid} is gone or stopped answering; " +
                (err == Native.SpawnerUseDirect ? "this process starts directly" : "this process had started"));
            _spawnerSock.Dispose();
            _spawnerPidfd.Dispose();
            _spawnerSock = null;
            _spawnerPidfd = null;
            _spawnerPid = 0;
        }
        return err;
    }

    /// <summary>Caller holds table.Gate. The direct path: a vfork child of the agent moves itself into the work cgroups
    /// (and checks the pids limit there) before exec. The cgroup files are opened for this one spawn only.</summary>
    private unsafe int DirectSpawnLocked(Native.SpawnReq* r, out int pid, out int stage)
    {
        ProcessCgroup.Files? cgroupFiles = null;
        if (cgroup is not null)
        {
            cgroupFiles = cgroup.OpenFiles(out int cerr);
            if (cgroupFiles is null)
                throw new AgentErrorException(ErrorCode.Internal, $"cannot open the container's process cgroup: {Native.ErrorText(cerr)}");
        }
        using var closeCgroupFiles = cgroupFiles;
        ProcessCgroup.Files? memoryFiles = null;
        if (memoryCgroup is not null)
        {
            memoryFiles = memoryCgroup.OpenFiles(out int merr);
            if (memoryFiles is null)
                throw new AgentErrorException(ErrorCode.Internal, $"cannot open the container's memory cgroup: {Native.ErrorText(merr)}");
        }
        using var closeMemoryFiles = memoryFiles;
        var direct = *r;
        direct.CgroupProcsFd = cgroupFiles?.Procs ?? -1;
        direct.PidsCurrentFd = cgroupFiles?.PidsCurrent ?? -1;
        direct.PidsMaxFd = cgroupFiles?.PidsMax ?? -1;
        direct.MemoryProcsFd = memoryFiles?.Procs ?? -1;
        return Native.Spawn(&direct, out pid, out stage);
    }

    /// <summary>A working directory that does not exist is made, with its parents, owned by the process's user (Garden's
    /// and guardian's rule: the process starts there even where its user may not write). Resolved in the container's root
    /// and never through a /proc magic link (native/spawn.c, gardenspawn_make_dir).</summary>
    private static void MakeWorkingDirectory(string dir, Credentials creds)
    {
        if (dir.Contains('\0')) throw new AgentErrorException(ErrorCode.BadDirectory, "the working directory holds a NUL byte");
        int err = Native.MakeDir(dir, creds.Uid, creds.Gid);
        if (err != 0) throw new AgentErrorException(ErrorCode.BadDirectory, $"cannot make working directory {dir}: {DirErrorText(err)}");
    }

    /// <summary>ELOOP from a working directory: mostly a /proc link of a process, which is never followed.</summary>
    private static string DirErrorText(int errno) => errno == LibC.ELOOP
        ? "it leads through a /proc link of a process (never followed) or too many symbolic links"
        : Native.ErrorText(errno);

    /// <summary>What execve answers when the program is missing or not runnable: the client's error, not the agent's.</summary>
    private static readonly int[] NotExecutable =
        [LibC.ENOENT, LibC.EACCES, LibC.ENOEXEC, LibC.ENOTDIR, LibC.EISDIR, LibC.ELOOP, LibC.ENAMETOOLONG, LibC.EPERM];

    private static AgentErrorException SpawnError(Native.Stage stage, int errno, string path, string dir,
        (int Resource, ulong Soft, ulong Hard)[] rlimits, List<string> argv, List<string> env)
    {
        string text = Native.ErrorText(errno);
        static long Bytes(List<string> strings) => strings.Sum(s => (long)Encoding.UTF8.GetByteCount(s) + 1 + sizeof(long));
        return stage switch
        {
            // the caller's error: the daemon checks a budget before it asks, but the kernel's is a quarter of the stack limit
            Native.Stage.Exec when errno == LibC.E2BIG => new AgentErrorException(ErrorCode.Invalid,
                $"env: the environment ({env.Count} entries, {Bytes(env)} bytes) and the arguments ({argv.Count}, {Bytes(argv)} bytes) are too large for execve ({text}); a quarter of the stack limit is what it takes"),
            Native.Stage.Exec => NotExecutable.Contains(errno)
                ? new AgentErrorException(ErrorCode.NotExecutable, $"cannot execute {path}: {text}")
                : new AgentErrorException(ErrorCode.Internal, $"execve {path}: {text}"),
            Native.Stage.Chdir => new AgentErrorException(ErrorCode.BadDirectory, $"cannot use working directory {dir}: {DirErrorText(errno)}"),
            Native.Stage.Rlimit => new AgentErrorException(ErrorCode.Invalid, $"setrlimit: {text}"),
            Native.Stage.Creds => new AgentErrorException(ErrorCode.Internal, $"cannot switch user: {text}"),
            Native.Stage.Pids => new AgentErrorException(ErrorCode.PidsLimit, "the container is at its pids limit"),
            Native.Stage.Cgroup => new AgentErrorException(ErrorCode.Internal, $"cannot join the container's process cgroup: {text}"),
            _ => new AgentErrorException(ErrorCode.Internal, $"spawn {path}: {text}"),
        };
    }

    private static List<string> BuildEnv(IEnumerable<string> requested, Credentials creds)
    {
        var env = requested.ToList();
        bool Has(string key) => env.Any(e => e.StartsWith(key + "=", StringComparison.Ordinal));
        if (!Has("HOME")) env.Add("HOME=" + creds.Home);
        if (!Has("USER") && creds.Name != null) env.Add("USER=" + creds.Name);
        if (!Has("PATH")) env.Add("PATH=" + (creds.Uid == 0 ? DefaultPath : UserPath));
        return env;
    }

    /// <summary>A path without '/' is looked up in PATH from the process env.</summary>
    private static string ResolvePath(string path, List<string> env)
    {
        if (path.Contains('/')) return path;
        string searchPath = env.LastOrDefault(e => e.StartsWith("PATH=", StringComparison.Ordinal))?[5..] ?? DefaultPath;
        foreach (var d in searchPath.Split(':'))
        {
            var candidate = Path.Combine(d.Length == 0 ? "." : d, path);
            try
            {
                if (File.Exists(candidate) && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
                    return candidate;
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        throw new AgentErrorException(ErrorCode.NotExecutable, $"executable file not found in $PATH: {path}");
    }

    private static (Fd Read, Fd Write) NewPipe()
    {
        Check(Native.Pipe(out int r, out int w), "pipe");
        var read = new Fd(r);
        var write = new Fd(w);
        // bigger pipes: fewer wakeups for chatty processes
        Native.SetPipeSize(r, 256 * 1024);
        return (read, write);
    }

    private static void Check(int errno, string call)
    {
        if (errno != 0) throw new AgentErrorException(ErrorCode.Internal, $"{call}: {Native.ErrorText(errno)}");
    }

    /// <summary>Native memory for one spawn's strings and arrays; freed at once after fork.</summary>
    private sealed unsafe class NativeArena : IDisposable
    {
        private readonly List<IntPtr> _blocks = [];

        private void* Alloc(int bytes)
        {
            var p = NativeMemory.Alloc((nuint)Math.Max(bytes, 1));
            _blocks.Add((IntPtr)p);
            return p;
        }

        public byte* Str(string s)
        {
            int n = Encoding.UTF8.GetByteCount(s);
            var p = (byte*)Alloc(n + 1);
            fixed (char* c = s) Encoding.UTF8.GetBytes(c, s.Length, p, n);
            p[n] = 0;
            return p;
        }

        public byte** StrArray(IReadOnlyList<string> items)
        {
            var arr = (byte**)Alloc(sizeof(byte*) * (items.Count + 1));
            for (int i = 0; i < items.Count; i++) arr[i] = Str(items[i]);
            arr[items.Count] = null;
            return arr;
        }

        public T* Array<T>(T[] items) where T : unmanaged
        {
            var p = (T*)Alloc(sizeof(T) * items.Length);
            for (int i = 0; i < items.Length; i++) p[i] = items[i];
            return p;
        }

        public void Dispose()
        {
            foreach (var b in _blocks) NativeMemory.Free((void*)b);
        }
    }
}

/// <summary>The container's process cgroup, from the directory fd gardend hands over (--cgroup-fd): every spawned process
/// joins it before exec, and is refused when the cgroup is at its pids limit. The agent keeps only the directory: its
/// cgroup.procs, pids.current and pids.max are opened for one spawn and closed right after (nothing in the agent holds
/// pids.max open, let alone for writing).</summary>
internal sealed class ProcessCgroup
{
    private readonly Fd _dir;

    private ProcessCgroup(Fd dir) => _dir = dir;

    public static ProcessCgroup Open(int dirFd)
    {
        var dir = new Fd(dirFd);
        int err = Native.CheckDir(dirFd);
        if (err != 0)
        {
            dir.Dispose();
            throw new IOException($"the process cgroup (fd {dirFd}) is not a directory: {Native.ErrorText(err)}");
        }
        var cgroup = new ProcessCgroup(dir);
        // fail at start, not at the first spawn
        using (var files = cgroup.OpenFiles(out err))
            if (files is null)
            {
                dir.Dispose();
                throw new IOException($"cannot open cgroup.procs of the process cgroup (fd {dirFd}): {Native.ErrorText(err)}");
            }
        return cgroup;
    }

    /// <summary>The cgroup's files for one spawn; null (with errno) when cgroup.procs cannot be opened.</summary>
    public Files? OpenFiles(out int errno)
    {
        errno = Native.OpenCgroup(_dir.Value, out var procs, out var current, out var max);
        return errno == 0 ? new Files(new Fd(procs), new Fd(current), new Fd(max)) : null;
    }

    /// <summary>cgroup.procs (write), pids.current and pids.max (read; -1 when the pids controller is not there).</summary>
    public sealed class Files(Fd procs, Fd pidsCurrent, Fd pidsMax) : IDisposable
    {
        public int Procs => procs.Value;
        public int PidsCurrent => pidsCurrent.IsInvalid ? -1 : pidsCurrent.Value;
        public int PidsMax => pidsMax.IsInvalid ? -1 : pidsMax.Value;

        public void Dispose()
        {
            procs.Dispose();
            pidsCurrent.Dispose();
            pidsMax.Dispose();
        }
    }
}
