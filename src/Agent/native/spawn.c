// garden-agent native spawn: fork/exec must not run managed code in the child.
// Modelled on dotnet/runtime src/native/libs/System.Native/pal_process.c (SystemNative_ForkAndExecProcess).
// The child only makes async-signal-safe calls (raw syscalls for credentials: glibc's setuid/setgid
// broadcast to every thread of the parent, which is wrong in a vfork child).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

// openat2(2)'s struct open_how and the one resolve flag used here (linux/openat2.h, kept out for older headers).
typedef struct
{
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
} garden_open_how;
#define GARDEN_RESOLVE_NO_MAGICLINKS 0x02

// Opens a directory the way a working directory is resolved here: symlinks are followed (inside the container's root,
// which is the agent's "/"), but never a /proc magic link (/proc/PID/fd/N, /proc/PID/cwd, /proc/PID/root): through those
// a path would reach whatever a process holds open, e.g. the agent's host cgroup directory. fd, or -1 with errno.
// O_PATH, so it needs only search permission along the path, like chdir.
static int open_dir_no_magic(int dirfd, const char* path, int flags)
{
    garden_open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_DIRECTORY | O_CLOEXEC);
    how.resolve = GARDEN_RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    // a kernel before 5.6 has no openat2: the plain open, without the magic-link fence
    if (fd < 0 && errno == ENOSYS) fd = openat(dirfd, path, flags | O_DIRECTORY | O_CLOEXEC);
    return fd;
}

// The first argument that makes this binary the agent's spawner (spawner_main) instead of the agent.
#define SPAWNER_ARG "spawner"

// Failure stages reported to the parent (must match Native.cs).
enum
{
    STAGE_NONE = 0,
    STAGE_SETUP = 1,    // setsid, tty, dup2
    STAGE_RLIMIT = 2,
    STAGE_CREDS = 3,    // setgroups, setgid, setuid
    STAGE_CHDIR = 4,
    STAGE_EXEC = 5,
    STAGE_CGROUP = 6,   // joining the container's process cgroup
    STAGE_PIDS = 7,     // the process cgroup is at its pids limit
};

typedef struct
{
    const char* path;
    char* const* argv;
    char* const* envp;
    const char* dir;
    int32_t stdin_fd;
    int32_t stdout_fd;
    int32_t stderr_fd;
    int32_t tty_fd;          // pty slave to make the controlling terminal, or -1
    int32_t set_creds;
    uint32_t uid;
    uint32_t gid;
    int32_t ngroups;
    const uint32_t* groups;
    int32_t nrlimits;
    const int32_t* rl_resource;
    const uint64_t* rl_soft;
    const uint64_t* rl_hard;
    uint16_t rows;
    uint16_t cols;
    int32_t cgroup_procs_fd;    // cgroup.procs of the container's process cgroup, or -1
    int32_t pids_current_fd;    // its pids.current and pids.max, or -1
    int32_t pids_max_fd;
    int32_t memory_procs_fd;    // cgroup.procs of the process cgroup in v1's memory hierarchy, or -1 (v2: one tree)
    int32_t keep_oom_score;     // 1: keep the agent's oom_score_adj (the spawner), 0: raise it to CHILD_OOM_SCORE_ADJ
} garden_spawn_req;

// What a spawned process's oom_score_adj is raised to: of everything in a container at its memory limit, the agent (PID 1,
// a few MiB) is the last the kernel's OOM killer should choose. Raising it needs no privilege; a process may not lower it
// again without CAP_SYS_RESOURCE (which containers lack) below its oom_score_adj_min.
#define CHILD_OOM_SCORE_ADJ "500"

// The agent's own (and its spawner's): above gardend's (0, or -900 where gardend may lower it), below its processes'.
#define AGENT_OOM_SCORE_ADJ "300"

// Writes VALUE to /proc/self/oom_score_adj when it reads less; best effort (nothing to report to before the runtime).
static void raise_oom_score_adj(const char* value)
{
    int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n > 0 && atoi(buf) < atoi(value)) (void)!pwrite(fd, value, strlen(value), 0);
    close(fd);
}

// The agent is PID 1 of a container and shares uid 0 (and the capabilities) of the container's root: while it is
// dumpable, any root process in the container may ptrace it, read /proc/1/fd/* links, open them, or copy its descriptors
// with pidfd_getfd (the listening socket, host files). Not dumpable, every one of those needs CAP_SYS_PTRACE in the
// container's user namespace, which an ordinary container does not have. Set before the .NET runtime starts (a
// constructor of this library, linked into the agent), so no thread of the agent ever runs dumpable; execve resets it,
// and so does any credential change of a task sharing the agent's mm (the vfork child below), so it is set again there.
static int parse_fd(const char* s)
{
    if (s == NULL || *s == '\0') return -1;
    int v = 0;
    for (; *s; s++)
    {
        if (*s < '0' || *s > '9' || v > 100000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

// Closes every fd from lo up, except the (ascending) ones in keep.
static void close_all_but(int lo, const int* keep, int nkeep)
{
    for (int i = 0; i < nkeep; i++)
    {
        if (keep[i] < lo) continue;
        if (keep[i] > lo) syscall(SYS_close_range, (unsigned)lo, (unsigned)keep[i] - 1, 0U);
        lo = keep[i] + 1;
    }
    syscall(SYS_close_range, (unsigned)lo, ~0U, 0U);
}

// The container's seccomp filter, compiled once by gardend (its SeccompCompiler: the program runc would make of the same
// profile) and handed over as a sealed memory file (--seccomp-fd N): the agent installs it on itself as the first thing it
// does, so runc does not compile the profile again for every container (~5 ms of each start). runc has set no_new_privs
// (the bundle's noNewPrivileges), which is what lets a process without CAP_SYS_ADMIN install a filter; it is set again
// here in case. Fail closed: a descriptor that is not a whole program, or a filter the kernel refuses, ends the agent
// before anything of the container runs, and gardend reports this line from runc's log.
static int32_t seccomp_installed;

// 1 in a pea's agent: raise_oom_after_exec below.
static int32_t oom_after_exec;

__attribute__((noreturn)) static void seccomp_fail(const char* what, int err)
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "garden-agent: cannot install the container's seccomp filter: %s: %s\n", what, strerror(err));
    if (n > 0) (void)!write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(125);
}

static void install_seccomp_early(int fd)
{
    if (fd < 0) seccomp_fail("--seccomp-fd names no descriptor", EBADF);
    struct stat st;
    if (fstat(fd, &st) != 0) seccomp_fail("fstat", errno);
    if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0
        || st.st_size > (off_t)(BPF_MAXINSNS * sizeof(struct sock_filter)))
        seccomp_fail("the descriptor does not hold a BPF program", EINVAL);
    // BPF_MAXINSNS instructions at most: 32 KiB, in the constructor's static storage rather than on the stack
    static struct sock_filter insns[BPF_MAXINSNS];
    size_t want = (size_t)st.st_size, got = 0;
    while (got < want)
    {
        ssize_t n = pread(fd, (char*)insns + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) seccomp_fail("pread", n < 0 ? errno : EIO);
        got += (size_t)n;
    }
    close(fd);
    struct sock_fprog prog = { .len = (unsigned short)(want / sizeof(struct sock_filter)), .filter = insns };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) seccomp_fail("PR_SET_NO_NEW_PRIVS", errno);
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) seccomp_fail("seccomp(SECCOMP_SET_MODE_FILTER)", errno);
    seccomp_installed = 1;
}

// glibc calls constructors with the program's arguments.
__attribute__((noreturn)) static void spawner_main(int pdeathsig);
static void spawner_fork_early(int cgroup_fd, int memory_fd);

__attribute__((constructor)) static void gardenspawn_not_dumpable_early(int argc, char** argv, char** envp)
{
    (void)envp;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    // The agent's fork server (see spawner_main): a pure C loop that never returns, so the .NET runtime never starts in it.
    if (argc == 2 && argv != NULL && argv[1] != NULL && strcmp(argv[1], SPAWNER_ARG) == 0) spawner_main(0);

    // As the agent (not one of its file tools, nor any mode named by a first argument without "--"): no descriptor but stdio
    // and the ones named on the command line survives into the runtime. runc closes the rest already; a stray one of
    // whoever started the agent would lead outside.
    if (argc < 1 || argv == NULL) return;
    if (argc > 1 && (strncmp(argv[1], "--", 2) != 0 || strcmp(argv[1], "--version") == 0)) return;
    // PID 1 of a Garden container is called garden-init (/proc/1/status, ps), as guardian's init is: GATS looks for it.
    prctl(PR_SET_NAME, "garden-init", 0, 0, 0);
    // Before gardend and after the container's processes (CHILD_OOM_SCORE_ADJ) when the host runs out of memory: gardend
    // every container needs, the agent only its own (its spawner, forked below, keeps this). Raising needs no privilege;
    // gardend itself may not be able to lower its own (that needs CAP_SYS_RESOURCE, which some hosts withhold).
    raise_oom_score_adj(AGENT_OOM_SCORE_ADJ);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--pea") == 0) oom_after_exec = 1;
    // every "--NAME-fd N" names a descriptor handed over on purpose (--listen-fd, --cgroup-fd, and any later one)
    int keep[8], nkeep = 0;
    for (int i = 1; i + 1 < argc; i++)
    {
        size_t len = strlen(argv[i]);
        if (len > 5 && strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + len - 3, "-fd") == 0)
        {
            int fd = parse_fd(argv[i + 1]);
            if (fd >= 3 && nkeep < 8) keep[nkeep++] = fd;
        }
    }
    // ascending, for close_all_but
    for (int i = 1; i < nkeep; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--)
        {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    close_all_but(3, keep, nkeep);

    int cgroup_fd = -1, memory_fd = -1, seccomp_fd = -1, seccomp_asked = 0;
    for (int i = 1; i + 1 < argc; i++)
    {
        if (strcmp(argv[i], "--cgroup-fd") == 0) cgroup_fd = parse_fd(argv[i + 1]);
        else if (strcmp(argv[i], "--memory-cgroup-fd") == 0) memory_fd = parse_fd(argv[i + 1]);
        else if (strcmp(argv[i], "--seccomp-fd") == 0)
        {
            seccomp_asked = 1;
            seccomp_fd = parse_fd(argv[i + 1]);
        }
    }
    // Before the spawner is forked and before the runtime starts: from here on the agent, its spawner and every process
    // they start run under the filter, as they did when runc installed it.
    if (seccomp_asked) install_seccomp_early(seccomp_fd);
    spawner_fork_early(cgroup_fd, memory_fd);
}

// 1 once the constructor installed the filter it was handed (--seccomp-fd), 0 when it was handed none.
int32_t gardenspawn_seccomp_installed(void)
{
    return seccomp_installed;
}

// 0, or errno. Called again by the agent at start (a check that the constructor ran) and after every spawn.
int32_t gardenspawn_set_not_dumpable(void)
{
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : errno;
}

// 1 when the process is dumpable, 0 when not, -errno on failure.
int32_t gardenspawn_get_dumpable(void)
{
    int r = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    return r < 0 ? -errno : r;
}

// Reads a decimal from the start of a cgroup file; -1 for "max" or an unreadable file.
static long long read_count(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0 || buf[0] < '0' || buf[0] > '9') return -1;
    long long v = 0;
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return v;
}

static void write_all(int fd, const void* buf, size_t len)
{
    const char* p = buf;
    while (len > 0)
    {
        ssize_t n = write(fd, p, len);
        if (n < 0)
        {
            if (errno == EINTR) continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

// A pea's agent runs from a file its container cannot read (gardend's PeaAgentBinary: non-dumpable from its first
// instruction), so its memory belongs to the host's user namespace and its /proc files to host root: a vfork child, which
// shares that memory until execve, cannot write its own oom_score_adj (CHILD_OOM_SCORE_ADJ above). After its execve the
// child's memory is the container's, and the agent (its container's root) raises it then. Set by the constructor for
// a pea's agent only (oom_after_exec, above the constructor); best effort, like the child's own write.

static void raise_oom_after_exec(pid_t pid)
{
    if (!oom_after_exec || pid <= 0) return;
    char path[48];
    snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)pid);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    char cur[16];
    ssize_t n = pread(fd, cur, sizeof cur - 1, 0);
    if (n > 0)
    {
        cur[n] = '\0';
        if (atoi(cur) < atoi(CHILD_OOM_SCORE_ADJ)) write_all(fd, CHILD_OOM_SCORE_ADJ, sizeof CHILD_OOM_SCORE_ADJ - 1);
    }
    close(fd);
}

__attribute__((noreturn)) static void fail(int pipe_fd, int stage, int err)
{
    int32_t msg[2] = {stage, err};
    write_all(pipe_fd, msg, sizeof msg);
    _exit(127);
}

static int dup_to(int from, int to)
{
    if (from == to)
    {
        // clear CLOEXEC so it survives exec
        int flags = fcntl(to, F_GETFD);
        if (flags < 0) return -1;
        return fcntl(to, F_SETFD, flags & ~FD_CLOEXEC);
    }
    while (dup2(from, to) < 0)
    {
        if (errno != EINTR) return -1;
    }
    return 0;
}

// The child's side of a spawn, from the fork to execve: async-signal-safe only (no malloc, no stdio, no locks), since
// it runs in a vfork child of the agent (sharing the agent's memory) or in a fork child of the spawner. Never returns:
// execve, or _exit(127) after writing {stage, errno} to wfd. With report_pid (the spawner's children), the child first
// writes its own pid to wfd: the agent, not the spawner, is its parent (CLONE_PARENT), and learns the pid from the
// child itself, so a spawner killed mid-request cannot leave a process behind that the agent does not know.
__attribute__((noreturn)) static void child_exec(const garden_spawn_req* req, int wfd, int report_pid)
{
    if (report_pid)
    {
        int32_t self = (int32_t)syscall(SYS_getpid);
        write_all(wfd, &self, sizeof self);
    }
    for (int sig = 1; sig < NSIG; sig++)
    {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        // The raw syscall, not sigaction(): glibc refuses its internal signals (32, 33), and an ignored
        // disposition inherited by the agent must not reach the child through exec.
        struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } ksa;
        memset(&ksa, 0, sizeof ksa);
        ksa.handler = SIG_DFL;
        syscall(SYS_rt_sigaction, sig, &ksa, NULL, 8);
    }

    // Into the container's process cgroup, where its pids limit applies (the agent itself stays outside it, so a
    // fork bomb cannot starve the agent). Moving in is not refused at the limit, so the count is checked after.
    if (req->cgroup_procs_fd >= 0)
    {
        if (write(req->cgroup_procs_fd, "0", 1) < 0) fail(wfd, STAGE_CGROUP, errno);
        if (req->pids_current_fd >= 0 && req->pids_max_fd >= 0)
        {
            long long max = read_count(req->pids_max_fd);
            long long cur = read_count(req->pids_current_fd);
            if (max >= 0 && cur > max) fail(wfd, STAGE_PIDS, EAGAIN);
        }
    }
    // And into its memory cgroup (v1, where that is another hierarchy): the memory limit is there, not on the agent.
    if (req->memory_procs_fd >= 0 && write(req->memory_procs_fd, "0", 1) < 0) fail(wfd, STAGE_CGROUP, errno);

    if (setsid() < 0) fail(wfd, STAGE_SETUP, errno);

    if (req->tty_fd >= 0)
    {
        if (ioctl(req->tty_fd, TIOCSCTTY, 0) < 0) fail(wfd, STAGE_SETUP, errno);
        if (req->rows > 0 && req->cols > 0)
        {
            struct winsize ws;
            memset(&ws, 0, sizeof ws);
            ws.ws_row = req->rows;
            ws.ws_col = req->cols;
            ioctl(req->tty_fd, TIOCSWINSZ, &ws);
        }
    }

    if (dup_to(req->stdin_fd, 0) < 0 || dup_to(req->stdout_fd, 1) < 0 || dup_to(req->stderr_fd, 2) < 0)
        fail(wfd, STAGE_SETUP, errno);

    // Nothing of the agent but 0,1,2 may leak into the process.
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    {
        for (int fd = 3; fd < 65536; fd++)
        {
            if (fd == wfd) continue;
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }

    // Children must not inherit the agent's oom_score_adj, and are preferred to it as the OOM killer's victim. A vfork
    // child writing its own oom_score_adj changes only its own (the kernel skips the processes sharing its mm then).
    if (!req->keep_oom_score)
    {
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0)
        {
            write_all(oom, CHILD_OOM_SCORE_ADJ, sizeof CHILD_OOM_SCORE_ADJ - 1);
            close(oom);
        }
    }

    for (int i = 0; i < req->nrlimits; i++)
    {
        struct rlimit rl;
        rl.rlim_cur = (rlim_t)req->rl_soft[i];
        rl.rlim_max = (rlim_t)req->rl_hard[i];
        if (setrlimit(req->rl_resource[i], &rl) != 0) fail(wfd, STAGE_RLIMIT, errno);
    }

    if (req->set_creds)
    {
        // The process's own stdio (pipes or pty, fresh for this process) belongs to its user, as runc gives it, so a
        // user other than root may open /dev/stdin, /dev/stdout, /dev/stderr (/proc/self/fd/N reopens the pipe,
        // which is checked against the pipe's owner and mode 0600). Not /dev/null, nor any other device or file.
        for (int fd = 0; fd <= 2; fd++)
        {
            struct stat st;
            if (fstat(fd, &st) == 0 && st.st_uid != req->uid
                && (S_ISFIFO(st.st_mode) || (S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143)))
                fchown(fd, req->uid, req->gid);
        }
        if (syscall(SYS_setgroups, (long)req->ngroups, req->groups) != 0) fail(wfd, STAGE_CREDS, errno);
        if (syscall(SYS_setresgid, (long)req->gid, (long)req->gid, (long)req->gid) != 0) fail(wfd, STAGE_CREDS, errno);
        if (syscall(SYS_setresuid, (long)req->uid, (long)req->uid, (long)req->uid) != 0) fail(wfd, STAGE_CREDS, errno);
        // A credential change resets the dumpable flag of the mm, and a vfork child shares the agent's mm: clear it
        // again at once (execve gives the child an mm of its own with its own flag).
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }

    // As the process's user (its own search permissions), and never through a /proc magic link: at this point the
    // child still holds the agent's descriptors (CLOEXEC closes them only at exec), and /proc/self/fd/N would make one
    // of them, the host cgroup directory, the process's working directory.
    if (req->dir != NULL && req->dir[0] != '\0')
    {
        int dfd = open_dir_no_magic(AT_FDCWD, req->dir, O_PATH);
        if (dfd < 0 || fchdir(dfd) != 0) fail(wfd, STAGE_CHDIR, errno);
        close(dfd);
    }

    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);

    execve(req->path, req->argv, req->envp);
    fail(wfd, STAGE_EXEC, errno);
}

// Returns 0 and sets *out_pid on success; otherwise an errno, with *out_stage naming the step that failed.
int32_t gardenspawn_spawn(const garden_spawn_req* req, int32_t* out_pid, int32_t* out_stage)
{
    *out_pid = -1;
    *out_stage = STAGE_NONE;

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0)
    {
        *out_stage = STAGE_SETUP;
        return errno;
    }

    // Block every signal so no handler of the parent runs in the child before dispositions are reset.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    pid_t pid = vfork();
    if (pid == 0) child_exec(req, errpipe[1], 0);

    // ---- parent ----
    int saved = errno;
    // whatever the child did to the shared mm before exec, the agent is not dumpable
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(errpipe[1]);
    if (pid < 0)
    {
        close(errpipe[0]);
        *out_stage = STAGE_SETUP;
        return saved;
    }

    int32_t msg[2];
    size_t got = 0;
    while (got < sizeof msg)
    {
        ssize_t n = read(errpipe[0], (char*)msg + got, sizeof msg - got);
        if (n < 0)
        {
            if (errno == EINTR) continue;
            break;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(errpipe[0]);

    if (got == sizeof msg)
    {
        // exec failed; the child has _exit(127)ed and the reaper collects it
        *out_pid = pid;
        *out_stage = msg[0];
        return msg[1] != 0 ? msg[1] : EIO;
    }

    *out_pid = pid;
    if (!req->keep_oom_score) raise_oom_after_exec(pid);
    return 0;
}

// Opens the files of the process cgroup under its directory fd for one spawn (the caller closes them right after): the
// agent keeps only the directory, never pids.max or cgroup.procs open. Each O_CLOEXEC; current and max may be -1.
int32_t gardenspawn_open_cgroup(int32_t dirfd, int32_t* out_procs, int32_t* out_current, int32_t* out_max)
{
    *out_current = -1;
    *out_max = -1;
    *out_procs = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (*out_procs < 0) return errno;
    *out_current = openat(dirfd, "pids.current", O_RDONLY | O_CLOEXEC);
    *out_max = openat(dirfd, "pids.max", O_RDONLY | O_CLOEXEC);
    return 0;
}

// Checks that fd is a directory (the process cgroup handed over by the daemon). 0 or errno.
int32_t gardenspawn_check_dir(int32_t fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

// What tells one version of a file from another, for a cache of what was parsed from it (Users.cs): out[0..4] its device,
// inode, size, mtime and ctime (ns, following symlinks), out[5] the time now (CLOCK_REALTIME, ns, the clock file times
// come from). 0 or errno.
int32_t gardenspawn_file_version(const char* path, uint64_t* out)
{
    struct stat st;
    if (stat(path, &st) != 0) return errno;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    out[0] = (uint64_t)st.st_dev;
    out[1] = (uint64_t)st.st_ino;
    out[2] = (uint64_t)st.st_size;
    out[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
    out[4] = (uint64_t)st.st_ctim.tv_sec * 1000000000ull + (uint64_t)st.st_ctim.tv_nsec;
    out[5] = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    return 0;
}

// Points fds 0, 1 and 2 at the container's /dev/null. runc hands the agent its own stdout and stderr, a host file (the
// runc log): once the agent runs, nothing of it may write there. 0 or errno (the fds are left as they were then).
int32_t gardenspawn_stdio_to_devnull(void)
{
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    // a character device 1:3, not whatever file a rootfs put at /dev/null
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3)
    {
        close(fd);
        return ENODEV;
    }
    for (int i = 0; i < 3; i++)
    {
        while (dup2(fd, i) < 0)
        {
            if (errno != EINTR)
            {
                int e = errno;
                close(fd);
                return e;
            }
        }
    }
    close(fd);
    return 0;
}

// Opens a pty pair: both fds O_CLOEXEC, the slave O_NOCTTY.
int32_t gardenspawn_openpty(int32_t* out_master, int32_t* out_slave, uint16_t rows, uint16_t cols)
{
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
    {
        master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0) return errno;
    }
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
    {
        int e = errno;
        close(master);
        return e;
    }
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
    {
        unsigned int n;
        if (ioctl(master, TIOCGPTN, &n) < 0)
        {
            int e = errno;
            close(master);
            return e;
        }
        char name[64];
        // no snprintf dependency issues here: we are in the parent
        char digits[16];
        int len = 0;
        do { digits[len++] = (char)('0' + n % 10); n /= 10; } while (n > 0);
        const char* prefix = "/dev/pts/";
        size_t p = strlen(prefix);
        memcpy(name, prefix, p);
        while (len > 0) name[p++] = digits[--len];
        name[p] = '\0';
        slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
        {
            int e = errno;
            close(master);
            return e;
        }
    }
    if (rows > 0 && cols > 0)
    {
        struct winsize ws;
        memset(&ws, 0, sizeof ws);
        ws.ws_row = rows;
        ws.ws_col = cols;
        ioctl(master, TIOCSWINSZ, &ws);
    }
    *out_master = master;
    *out_slave = slave;
    return 0;
}

int32_t gardenspawn_set_winsize(int32_t fd, uint16_t rows, uint16_t cols)
{
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_row = rows;
    ws.ws_col = cols;
    return ioctl(fd, TIOCSWINSZ, &ws) == 0 ? 0 : errno;
}

// Ignore SIGPIPE so writes to a closed socket or pipe only fail with EPIPE; make sure SIGCHLD is not
// ignored (children would then be reaped by the kernel and their exit status lost).
void gardenspawn_init_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
}

// Blocking wait for any child. Returns pid, 0 never; -1 with *out_errno set.
// *out_status is the raw wait status.
int32_t gardenspawn_waitany(int32_t* out_status, int32_t* out_errno)
{
    int status = 0;
    pid_t pid;
    do
    {
        pid = waitpid(-1, &status, 0);
    } while (pid < 0 && errno == EINTR);
    *out_errno = pid < 0 ? errno : 0;
    *out_status = status;
    return pid;
}

// Creates a pipe with both ends O_CLOEXEC.
int32_t gardenspawn_pipe(int32_t* out_read, int32_t* out_write)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
    *out_read = fds[0];
    *out_write = fds[1];
    return 0;
}

// Blocking read/write with EINTR retry. Return bytes or -errno.
int64_t gardenspawn_read(int32_t fd, void* buf, int64_t len)
{
    for (;;)
    {
        ssize_t n = read(fd, buf, (size_t)len);
        if (n >= 0) return n;
        if (errno != EINTR) return -(int64_t)errno;
    }
}

int64_t gardenspawn_write_all(int32_t fd, const void* buf, int64_t len)
{
    const char* p = buf;
    int64_t left = len;
    while (left > 0)
    {
        ssize_t n = write(fd, p, (size_t)left);
        if (n < 0)
        {
            if (errno == EINTR) continue;
            return -(int64_t)errno;
        }
        p += n;
        left -= n;
    }
    return len;
}

int32_t gardenspawn_close(int32_t fd)
{
    return close(fd) == 0 ? 0 : errno;
}

int32_t gardenspawn_open_devnull(int32_t flags_write)
{
    int fd = open("/dev/null", (flags_write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int32_t gardenspawn_kill(int32_t pid, int32_t sig)
{
    return kill(pid, sig) == 0 ? 0 : errno;
}

// Makes sure fds 0,1,2 are open so pipes never land on them.
void gardenspawn_ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
    {
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
        {
            int n = open("/dev/null", O_RDWR);
            if (n >= 0 && n != fd)
            {
                dup2(n, fd);
                close(n);
            }
        }
    }
}

int32_t gardenspawn_set_pipe_size(int32_t fd, int32_t size)
{
    return fcntl(fd, F_SETPIPE_SZ, size) < 0 ? errno : 0;
}

int32_t gardenspawn_strerror(int32_t err, char* buf, int32_t len)
{
    const char* s = strerror(err);
    size_t n = strlen(s);
    if ((int32_t)n >= len) n = (size_t)len - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return (int32_t)n;
}

// Duplicates fd with O_CLOEXEC. Returns the new fd or -errno.
int32_t gardenspawn_dup(int32_t fd)
{
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    return n < 0 ? -errno : n;
}

// Blocks until fd is readable, at EOF, or in error (the following read will not block). 0: there is input to read; -1:
// nothing to read (the other end closed with the pipe empty, or an error: a read would return 0 or fail); or errno.
int32_t gardenspawn_wait_readable(int32_t fd)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    for (;;)
    {
        int r = poll(&p, 1, -1);
        if (r > 0) return (p.revents & POLLIN) ? 0 : -1;
        if (r < 0 && errno != EINTR) return errno;
    }
}

// Bytes waiting to be read in the pipe or pty fd (FIONREAD): 0 or more, or -errno.
int32_t gardenspawn_pending(int32_t fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) < 0 ? -errno : n;
}

// Makes the directory PATH and its missing parents for a process's working directory, as Garden does: as the agent (the
// container's root, so also where the process's user may not write), each directory it makes owned by uid:gid with mode
// 0755; what exists is left as it is. Every component is resolved from the last one's fd (from the agent's root, the
// container's, for an absolute path) without following a /proc magic link, and a directory just made is opened O_NOFOLLOW
// before it is given away: neither a symlink a process of the container plants (or swaps in meanwhile) nor a magic link
// leads the mkdir or the chown outside the container's own files. 0, or errno.
int32_t gardenspawn_make_dir(const char* path, uint32_t uid, uint32_t gid)
{
    int done = open_dir_no_magic(AT_FDCWD, path, O_PATH);
    if (done >= 0)
    {
        close(done);
        return 0;
    }
    if (errno != ENOENT) return errno;

    size_t len = strlen(path);
    if (len >= 4096) return ENAMETOOLONG;
    char buf[4096];
    memcpy(buf, path, len + 1);
    int cur = open(path[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0) return errno;
    char* save = NULL;
    for (char* comp = strtok_r(buf, "/", &save); comp != NULL; comp = strtok_r(NULL, "/", &save))
    {
        int next = -1;
        for (int attempt = 0; next < 0; attempt++)
        {
            next = open_dir_no_magic(cur, comp, O_PATH);
            if (next >= 0) break;
            int e = errno;
            if (e != ENOENT || attempt > 0)
            {
                close(cur);
                return e;
            }
            if (mkdirat(cur, comp, 0700) != 0)
            {
                e = errno;
                if (e == EEXIST) continue;   // made meanwhile (or a dangling symlink: then ENOENT again)
                close(cur);
                return e;
            }
            next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0 || fchown(next, uid, gid) != 0 || fchmod(next, 0755) != 0)
            {
                e = errno;
                if (next >= 0) close(next);
                close(cur);
                return e;
            }
        }
        close(cur);
        cur = next;
    }
    close(cur);
    return 0;
}

// ==== The spawner: the agent's fork server in the container's process cgroups (issue 13) ===========================
//
// Why: on cgroup v1 every move of a task into a cgroup (a write to cgroup.procs) takes cgroup_threadgroup_rwsem for
// writing, which waits for an RCU grace period unless another move happened just before: 8-77 ms when moves are spaced
// out (bench/probes/cgroup_move.c, bench/FINDINGS-run.md). The direct path above moves every new child into the work
// cgroups (pids, and memory on v1) before exec, so a Run cost about 10 ms where a fork+exec costs 1.4.
//
// What: a small process that LIVES in the work cgroups (moved there once, when it starts: off the Run path) and forks
// each process the agent asks for. A child is born in its parent's cgroups, so nothing moves. It never runs the .NET
// runtime: a pure C loop with an mm of its own of a few hundred KiB. The first one is forked by the agent's constructor
// before the runtime starts and moves itself (spawner_fork_early, at the end of this file); a later one (after container
// root killed the first) is this binary exec'd again by the direct path (/proc/self/exe, argv[1] SPAWNER_ARG, which the
// constructor above sends here). Not a CLONE_VM sibling of the agent: in the work memory cgroup at its limit, the OOM
// killer scores and kills by mm, and would take the agent along.
//
// Each child is forked with CLONE_PARENT: its parent is the agent, whose reaper collects its exit as for any process
// (and in a container the agent is PID 1 anyway). The child runs child_exec as a vfork child of the agent would, and
// writes its own pid into the request's error pipe first, so the agent learns of the process from the process itself.
//
// Protocol, on a SOCK_SEQPACKET socketpair (the spawner's end is its fd 0), one request at a time:
//   agent -> spawner: one message: a spawner_wire header, the arrays, the strings; SCM_RIGHTS with exactly four fds:
//                     the write end of the error pipe, then stdin, stdout, stderr (with SPAWNER_TTY, stdin is the tty).
//   spawner -> agent: {int32 errno of clone (0 when forked), int32 pid}, after it closed the fds it received.
//   error pipe:       the child's pid (4 bytes), then {stage, errno} only when it fails before execve; EOF once every
//                     copy of the write end is closed: the child's at execve (CLOEXEC) or exit, the spawner's after clone.
// A request the spawner cannot take (malformed, or not four fds) is answered EINVAL and nothing is forked.
//
// Out of reach as the agent is (issues 9/10): not dumpable from its first instruction (the constructor) - so no
// process of the container may ptrace it, read its memory or reach its descriptors through /proc - and it holds nothing
// but its socket and /dev/null: the direct path that starts it marks every other descriptor CLOEXEC, and it closes
// everything from 3 up again. It blocks every signal it can (a stray `kill -TERM -1` in the container does not end
// it), dies with the agent (EOF on its socket; PR_SET_PDEATHSIG for the first one, see spawner_main), and forks only
// what a request asks. Container
// root can still SIGKILL or SIGSTOP it (it is not PID 1): the agent then sees EOF or a timeout, kills it, runs that
// request through the direct path, and starts a new spawner later (Spawner.cs).

#define SPAWNER_MAGIC 0x31505347u          // "GSP1"
#define SPAWNER_MAX_MSG (256 * 1024)       // larger requests (huge environments) take the direct path
#define SPAWNER_MAX_STRINGS 32768          // argv + env strings in one request
#define SPAWNER_MAX_GROUPS 65536           // NGROUPS_MAX
#define SPAWNER_MAX_RLIMITS 64
#define SPAWNER_NFDS 4
#define SPAWNER_SET_CREDS 1u
#define SPAWNER_TTY 2u

typedef struct
{
    uint32_t magic;
    uint32_t total;          // bytes of the whole message
    uint32_t flags;          // SPAWNER_SET_CREDS, SPAWNER_TTY
    uint32_t uid;
    uint32_t gid;
    int32_t ngroups;
    int32_t nrlimits;
    int32_t nargv;
    int32_t nenv;
    uint16_t rows;
    uint16_t cols;
    uint32_t path_len;       // with its NUL
    uint32_t dir_len;        // with its NUL; 1 for none
    uint32_t strings_len;    // argv then env, each NUL-terminated
    uint32_t reserved;
} spawner_wire;              // then uint64 soft[nrlimits], hard[nrlimits], int32 resource[nrlimits], uint32 groups[ngroups],
                             // path, dir, strings

typedef struct
{
    int32_t err;
    int32_t pid;
} spawner_reply;

static size_t spawner_size(const spawner_wire* h)
{
    return sizeof *h + (size_t)h->nrlimits * (2 * sizeof(uint64_t) + sizeof(int32_t)) + (size_t)h->ngroups * sizeof(uint32_t)
        + h->path_len + h->dir_len + h->strings_len;
}

// The spawner's buffers: static, so their pages are only there once touched (an idle spawner stays a few pages).
static uint64_t spawner_buf[SPAWNER_MAX_MSG / sizeof(uint64_t)];
static char* spawner_ptrs[SPAWNER_MAX_STRINGS + 2];

// Splits n NUL-terminated strings from the start of s (len bytes) into out[0..n-1], out[n] = NULL. The bytes they take,
// or -1 when they do not fit.
static ssize_t spawner_split(char* s, size_t len, int n, char** out)
{
    size_t at = 0;
    for (int i = 0; i < n; i++)
    {
        if (at >= len) return -1;
        char* end = memchr(s + at, '\0', len - at);
        if (end == NULL) return -1;
        out[i] = s + at;
        at = (size_t)(end - s) + 1;
    }
    out[n] = NULL;
    return (ssize_t)at;
}

// Checks one received message and points req into it. 0, or EINVAL.
static int spawner_parse(size_t n, const int* fds, garden_spawn_req* req)
{
    spawner_wire* h = (spawner_wire*)spawner_buf;
    if (n < sizeof *h || h->magic != SPAWNER_MAGIC || h->total != n) return EINVAL;
    if (h->ngroups < 0 || h->ngroups > SPAWNER_MAX_GROUPS || h->nrlimits < 0 || h->nrlimits > SPAWNER_MAX_RLIMITS
        || h->nargv < 1 || h->nenv < 0 || h->nargv > SPAWNER_MAX_STRINGS || h->nenv > SPAWNER_MAX_STRINGS - h->nargv
        || h->path_len < 2 || h->dir_len < 1 || h->path_len > SPAWNER_MAX_MSG || h->dir_len > SPAWNER_MAX_MSG
        || h->strings_len > SPAWNER_MAX_MSG || spawner_size(h) != n)
        return EINVAL;
    char* p = (char*)(h + 1);
    memset(req, 0, sizeof *req);
    req->rl_soft = (const uint64_t*)p;
    p += (size_t)h->nrlimits * sizeof(uint64_t);
    req->rl_hard = (const uint64_t*)p;
    p += (size_t)h->nrlimits * sizeof(uint64_t);
    req->rl_resource = (const int32_t*)p;
    p += (size_t)h->nrlimits * sizeof(int32_t);
    req->groups = (const uint32_t*)p;
    p += (size_t)h->ngroups * sizeof(uint32_t);
    char* path = p;
    p += h->path_len;
    char* dir = p;
    p += h->dir_len;
    if (path[h->path_len - 1] != '\0' || memchr(path, '\0', h->path_len - 1) != NULL) return EINVAL;
    if (dir[h->dir_len - 1] != '\0' || memchr(dir, '\0', h->dir_len - 1) != NULL) return EINVAL;
    // argv, its NULL, then env after it in the same array; together they take exactly strings_len bytes
    ssize_t argv_bytes = spawner_split(p, h->strings_len, h->nargv, spawner_ptrs);
    if (argv_bytes < 0) return EINVAL;
    ssize_t env_bytes = spawner_split(p + argv_bytes, h->strings_len - (size_t)argv_bytes, h->nenv, spawner_ptrs + h->nargv + 1);
    if (env_bytes < 0 || (size_t)(argv_bytes + env_bytes) != h->strings_len) return EINVAL;

    req->path = path;
    req->argv = spawner_ptrs;
    req->envp = spawner_ptrs + h->nargv + 1;
    req->dir = dir;
    req->stdin_fd = fds[1];
    req->stdout_fd = fds[2];
    req->stderr_fd = fds[3];
    req->tty_fd = (h->flags & SPAWNER_TTY) ? fds[1] : -1;
    req->set_creds = (h->flags & SPAWNER_SET_CREDS) ? 1 : 0;
    req->uid = h->uid;
    req->gid = h->gid;
    req->ngroups = h->ngroups;
    req->nrlimits = h->nrlimits;
    req->rows = h->rows;
    req->cols = h->cols;
    // already in the work cgroups: no move, no pids check (the kernel refuses the fork itself at pids.max)
    req->cgroup_procs_fd = req->pids_current_fd = req->pids_max_fd = req->memory_procs_fd = -1;
    req->keep_oom_score = 0;
    return 0;
}

// pdeathsig: the signal for when the agent's thread that made this spawner exits (PR_SET_PDEATHSIG; the kernel's
// "parent" is that thread, not the process): SIGKILL for the first spawner, forked by the agent's main thread, which lives
// as long as the agent; 0 for one the agent started later from a thread of its pool, which may retire long before the
// agent. Either way it dies with the agent: EOF on its socket (the agent's end closes with the agent's last thread) ends
// the loop below, and in a container the agent is PID 1, whose exit kills everything in its pid namespace.
__attribute__((noreturn)) static void spawner_main(int pdeathsig)
{
    const int sock = 0;
    prctl(PR_SET_NAME, "garden-spawner", 0, 0, 0);
    if (pdeathsig != 0) prctl(PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);

    int type = 0;
    socklen_t tlen = sizeof type;
    if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_SEQPACKET) _exit(2);
    // Nothing but the socket (0) and /dev/null (1, 2) is held: the direct path that started it made every other
    // descriptor of the agent CLOEXEC; this makes sure.
    syscall(SYS_close_range, 3U, ~0U, 0U);

    for (;;)
    {
        union
        {
            char buf[CMSG_SPACE(sizeof(int) * (SPAWNER_NFDS + 4))];
            struct cmsghdr align;
        } control;
        struct iovec iov = {.iov_base = spawner_buf, .iov_len = sizeof spawner_buf};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;

        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n == 0) _exit(0);               // the agent closed its end, or died
        if (n < 0)
        {
            if (errno == EINTR) continue;
            _exit(1);
        }

        int fds[SPAWNER_NFDS + 4];
        int nfds = 0;
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
        {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count && nfds < SPAWNER_NFDS + 4; i++) memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }

        spawner_reply reply = {EINVAL, -1};
        garden_spawn_req req;
        if (nfds == SPAWNER_NFDS && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0 && spawner_parse((size_t)n, fds, &req) == 0)
        {
            // A fork, not a vfork: the child's credential changes and writes stay out of the spawner's memory. Its
            // parent is the agent (CLONE_PARENT; the exit signal is the spawner's own, SIGCHLD).
            long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0UL, 0UL, 0UL, 0UL);
            if (pid == 0) child_exec(&req, fds[0], 1);
            reply.err = pid < 0 ? errno : 0;
            reply.pid = pid < 0 ? -1 : (int32_t)pid;
        }
        for (int i = 0; i < nfds; i++) close(fds[i]);
        // a large request's pages go back, so the spawner stays small
        if ((size_t)n > 64 * 1024) madvise(spawner_buf, sizeof spawner_buf, MADV_DONTNEED);
        while (send(sock, &reply, sizeof reply, MSG_NOSIGNAL) < 0)
            if (errno != EINTR) _exit(1);
    }
}

// ---- the agent's side of the spawner ----

// A SOCK_SEQPACKET socketpair, both ends CLOEXEC; the agent's end (a) gets a send buffer for SPAWNER_MAX_MSG. 0 or errno.
int32_t gardenspawn_socketpair(int32_t* out_a, int32_t* out_b)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return errno;
    int size = 2 * SPAWNER_MAX_MSG;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    *out_a = sv[0];
    *out_b = sv[1];
    return 0;
}

// Waits up to timeout_ms (-1: forever) for fd to be readable. 1 readable (or EOF/error), 0 timeout, -1 poll failed.
static int wait_in(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    for (;;)
    {
        int r = poll(&p, 1, timeout_ms);
        if (r >= 0) return r > 0 ? 1 : 0;
        if (errno != EINTR) return -1;
    }
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

// A pidfd of the spawner, taken right after it started (under the agent's spawn lock, so before the reaper can have
// reported it): a kill through it can never reach another process that got the pid later. fd or -errno.
int32_t gardenspawn_pidfd_open(int32_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) return -errno;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    return fd;
}

static void spawner_kill(int pidfd)
{
    if (pidfd >= 0) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
}

// What gardenspawn_spawner_spawn returns when nothing was started and the request should take the direct path.
#define SPAWNER_USE_DIRECT (-1)

// Serializes req into a malloc'd message (the agent's side; freed by the caller). NULL when it does not fit the limits.
static void* spawner_pack(const garden_spawn_req* req, size_t* out_len)
{
    spawner_wire h;
    memset(&h, 0, sizeof h);
    h.magic = SPAWNER_MAGIC;
    h.flags = (req->set_creds ? SPAWNER_SET_CREDS : 0) | (req->tty_fd >= 0 ? SPAWNER_TTY : 0);
    h.uid = req->uid;
    h.gid = req->gid;
    h.ngroups = req->set_creds ? req->ngroups : 0;
    h.nrlimits = req->nrlimits;
    h.rows = req->rows;
    h.cols = req->cols;
    int nargv = 0, nenv = 0;
    size_t strings = 0;
    for (; req->argv[nargv] != NULL; nargv++)
    {
        strings += strlen(req->argv[nargv]) + 1;
        if (nargv > SPAWNER_MAX_STRINGS || strings > SPAWNER_MAX_MSG) return NULL;
    }
    for (; req->envp[nenv] != NULL; nenv++)
    {
        strings += strlen(req->envp[nenv]) + 1;
        if (nargv + nenv > SPAWNER_MAX_STRINGS || strings > SPAWNER_MAX_MSG) return NULL;
    }
    size_t path_len = strlen(req->path) + 1, dir_len = req->dir != NULL ? strlen(req->dir) + 1 : 1;
    if (nargv < 1 || nargv + nenv > SPAWNER_MAX_STRINGS || h.ngroups < 0 || h.ngroups > SPAWNER_MAX_GROUPS
        || h.nrlimits < 0 || h.nrlimits > SPAWNER_MAX_RLIMITS || path_len > SPAWNER_MAX_MSG || dir_len > SPAWNER_MAX_MSG)
        return NULL;
    h.nargv = nargv;
    h.nenv = nenv;
    h.path_len = (uint32_t)path_len;
    h.dir_len = (uint32_t)dir_len;
    h.strings_len = (uint32_t)strings;
    size_t total = spawner_size(&h);
    if (total > SPAWNER_MAX_MSG) return NULL;
    h.total = (uint32_t)total;

    char* buf = malloc(total);
    if (buf == NULL) return NULL;
    char* p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    for (int i = 0; i < h.nrlimits; i++, p += sizeof(uint64_t)) memcpy(p, &req->rl_soft[i], sizeof(uint64_t));
    for (int i = 0; i < h.nrlimits; i++, p += sizeof(uint64_t)) memcpy(p, &req->rl_hard[i], sizeof(uint64_t));
    for (int i = 0; i < h.nrlimits; i++, p += sizeof(int32_t)) memcpy(p, &req->rl_resource[i], sizeof(int32_t));
    if (h.ngroups > 0) memcpy(p, req->groups, (size_t)h.ngroups * sizeof(uint32_t));
    p += (size_t)h.ngroups * sizeof(uint32_t);
    memcpy(p, req->path, path_len);
    p += path_len;
    if (req->dir != NULL) memcpy(p, req->dir, dir_len);
    else *p = '\0';
    p += dir_len;
    for (int i = 0; i < nargv; i++)
    {
        size_t l = strlen(req->argv[i]) + 1;
        memcpy(p, req->argv[i], l);
        p += l;
    }
    for (int i = 0; i < nenv; i++)
    {
        size_t l = strlen(req->envp[i]) + 1;
        memcpy(p, req->envp[i], l);
        p += l;
    }
    *out_len = total;
    return buf;
}

// Runs one spawn through the spawner on sock (spawner_pidfd: a pidfd of it). The caller holds the agent's spawn lock: one request at
// a time, and the reaper cannot look up the child before the caller registered it.
// Returns 0 with *out_pid (started), an errno with *out_stage (and *out_pid when the child exists and failed before
// execve, as gardenspawn_spawn), or SPAWNER_USE_DIRECT: nothing was started, run it through gardenspawn_spawn.
// *out_discard is set to 1 when the spawner is gone or was killed here (it stopped answering within timeout_ms): the
// caller closes sock and starts another one later; to 2 when it refused the request as malformed (and stays).
int32_t gardenspawn_spawner_spawn(int32_t sock, int32_t spawner_pidfd, const garden_spawn_req* req, int32_t timeout_ms,
    int32_t* out_pid, int32_t* out_stage, int32_t* out_discard)
{
    *out_pid = -1;
    *out_stage = STAGE_NONE;
    *out_discard = 0;
    size_t len = 0;
    void* packed = spawner_pack(req, &len);
    if (packed == NULL) return SPAWNER_USE_DIRECT;   // too large for one message: the direct path takes it

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0)
    {
        free(packed);
        *out_stage = STAGE_SETUP;
        return errno;
    }
    int fds[SPAWNER_NFDS] = {errpipe[1], req->stdin_fd, req->stdout_fd, req->stderr_fd};
    union
    {
        char buf[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {.iov_base = packed, .iov_len = len};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);

    ssize_t sent;
    do sent = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (sent < 0 && errno == EINTR);
    int send_errno = errno;
    free(packed);
    close(errpipe[1]);     // the copy in flight (then the spawner's and the child's) is what keeps the pipe open
    if (sent != (ssize_t)len)
    {
        close(errpipe[0]);
        // EMSGSIZE: this one is too large for the socket; ETOOMANYREFS: the kernel refuses descriptors in flight from
        // this host uid for now (it counts them per host uid, and with Garden's mapping every container's root is one
        // uid: another container can hold them all) - the spawner is fine, only this request takes the direct path;
        // anything else: the spawner is gone (EPIPE, ECONNRESET) or stuck with an unread request (EAGAIN)
        if (!(sent < 0 && (send_errno == EMSGSIZE || send_errno == ETOOMANYREFS)))
        {
            *out_discard = 1;
            spawner_kill(spawner_pidfd);
        }
        return SPAWNER_USE_DIRECT;
    }

    // The error pipe: the child's pid, maybe {stage, errno}, then EOF. A spawner that makes no progress for
    // timeout_ms (stopped by container root, say) is killed: its copy of the write end closes with it, and a child it
    // forked meanwhile still reports its pid here. From then on the wait is the child's alone (its execve), as on the
    // direct path.
    int32_t words[3];
    size_t got = 0;
    int killed = 0;
    for (;;)
    {
        int r = wait_in(errpipe[0], killed ? -1 : timeout_ms);
        if (r == 0)
        {
            spawner_kill(spawner_pidfd);
            killed = 1;
            *out_discard = 1;
            continue;
        }
        char scratch[64];
        char* dst = got < sizeof words ? (char*)words + got : scratch;
        size_t room = got < sizeof words ? sizeof words - got : sizeof scratch;
        ssize_t n = read(errpipe[0], dst, room);
        if (n < 0)
        {
            if (errno == EINTR) continue;
            break;
        }
        if (n == 0) break;
        if (got < sizeof words) got += (size_t)n;
    }
    close(errpipe[0]);

    // The spawner's reply: written right after it closed its copies, so due at once (unless it was killed).
    spawner_reply reply = {0, -1};
    int have_reply = 0;
    if (!killed)
    {
        if (wait_in(sock, timeout_ms) == 1)
        {
            ssize_t n;
            do n = recv(sock, &reply, sizeof reply, MSG_DONTWAIT);
            while (n < 0 && errno == EINTR);
            have_reply = n == (ssize_t)sizeof reply;
        }
        if (!have_reply)
        {
            spawner_kill(spawner_pidfd);
            *out_discard = 1;
        }
    }

    if (got >= sizeof(int32_t))
    {
        // the child exists (the agent's child): started, or failed before execve and _exit(127)ed
        *out_pid = words[0];
        if (got >= sizeof words)
        {
            *out_stage = words[1];
            return words[2] != 0 ? words[2] : EIO;
        }
        if (!req->keep_oom_score) raise_oom_after_exec(words[0]);
        return 0;
    }
    if (have_reply && reply.err == 0 && reply.pid > 0)
    {
        // forked, but killed before it could say so: like a vfork child killed before execve, a started process
        *out_pid = reply.pid;
        return 0;
    }
    if (have_reply && reply.err != 0 && reply.err != EINVAL)
    {
        // clone itself failed in the work cgroups: EAGAIN is the pids limit there
        *out_stage = reply.err == EAGAIN ? STAGE_PIDS : STAGE_SETUP;
        return reply.err;
    }
    if (have_reply && reply.err == EINVAL)
    {
        // refused as malformed (a bug, not the caller's): the direct path takes it; the spawner stays (*out_discard 2
        // tells the caller to log it)
        *out_discard = 2;
        return SPAWNER_USE_DIRECT;
    }
    // gone or killed before it forked anything
    *out_discard = 1;
    spawner_kill(spawner_pidfd);
    return SPAWNER_USE_DIRECT;
}

// ---- the first spawner: forked by the agent's constructor ----
//
// A container's first Run comes right after its Create, while a spawner started by the agent's runtime would still be
// moving into the work cgroups (that move is the RCU grace period this is all about). So the first spawner is forked
// here, before the .NET runtime starts: the agent is still one thread with a few pages of its own, so a plain fork
// gives the spawner a small mm of its own, as an exec would. Its cgroup moves then overlap the runtime's start, the
// agent's setup and the rest of the Create, and they come right after runc's own moves of the agent (a move shortly
// after another does not wait for a grace period). Nothing of the container runs yet: the child holds the agent's
// descriptors (runc's stdio, the listening socket, the cgroup directories) only until it has moved, then keeps its
// socket (as fd 0) and /dev/null. When anything here fails, the agent starts one later through the direct path.

static int early_spawner_sock = -1;
static int early_spawner_pid = -1;

static int move_self(int dirfd)
{
    int procs = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (procs < 0) return -1;
    ssize_t n = write(procs, "0", 1);
    close(procs);
    return n == 1 ? 0 : -1;
}

static void spawner_fork_early(int cgroup_fd, int memory_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return;
    int size = 2 * SPAWNER_MAX_MSG;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    pid_t pid = fork();
    if (pid < 0)
    {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    if (pid == 0)
    {
        // into the work cgroups: pids (v2: the one tree), then v1's memory hierarchy
        if (cgroup_fd >= 0 && move_self(cgroup_fd) != 0) _exit(3);
        if (memory_fd >= 0 && move_self(memory_fd) != 0) _exit(3);
        // the socket as fd 0, the container's /dev/null (the character device 1:3, nothing a rootfs put there) as 1 and 2
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        struct stat st;
        if (nul < 0 || fstat(nul, &st) != 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3) _exit(3);
        if (dup2(sv[1], 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0) _exit(3);
        syscall(SYS_close_range, 3U, ~0U, 0U);
        spawner_main(SIGKILL);
    }
    close(sv[1]);
    early_spawner_sock = sv[0];
    early_spawner_pid = pid;
}

// The agent's side of the first spawner, once: its socket (CLOEXEC) and pid, or -1s when there is none.
void gardenspawn_take_early_spawner(int32_t* out_sock, int32_t* out_pid)
{
    *out_sock = early_spawner_sock;
    *out_pid = early_spawner_pid;
    early_spawner_sock = -1;
    early_spawner_pid = -1;
}
