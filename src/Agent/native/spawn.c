// garden-agent native spawn: fork/exec must not run managed code in the child.
// Modelled on dotnet/runtime src/native/libs/System.Native/pal_process.c (SystemNative_ForkAndExecProcess).
// The child only makes async-signal-safe calls (raw syscalls for credentials: glibc's setuid/setgid
// broadcast to every thread of the parent, which is wrong in a vfork child).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
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
} garden_spawn_req;

// What a spawned process's oom_score_adj is raised to: of everything in a container at its memory limit, the agent (PID 1,
// a few MiB) is the last the kernel's OOM killer should choose. Raising it needs no privilege; a process may not lower it
// again without CAP_SYS_RESOURCE (which containers lack) below its oom_score_adj_min.
#define CHILD_OOM_SCORE_ADJ "500"

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

// glibc calls constructors with the program's arguments.
__attribute__((constructor)) static void gardenspawn_not_dumpable_early(int argc, char** argv, char** envp)
{
    (void)envp;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    // As the agent (not one of its file tools, nor any mode named by a first argument without "--"): no descriptor but stdio
    // and the ones named on the command line survives into the runtime. runc closes the rest already; a stray one of
    // whoever started the agent would lead outside.
    if (argc < 1 || argv == NULL) return;
    if (argc > 1 && (strncmp(argv[1], "--", 2) != 0 || strcmp(argv[1], "--version") == 0)) return;
    // PID 1 of a Garden container is called garden-init (/proc/1/status, ps), as guardian's init is: GATS looks for it.
    prctl(PR_SET_NAME, "garden-init", 0, 0, 0);
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

static void fail(int pipe_fd, int stage, int err)
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
    if (pid == 0)
    {
        // ---- child: async-signal-safe only ----
        int wfd = errpipe[1];
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
        int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (oom >= 0)
        {
            write_all(oom, CHILD_OOM_SCORE_ADJ, sizeof CHILD_OOM_SCORE_ADJ - 1);
            close(oom);
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

// Blocks until fd is readable, at EOF, or in error (the following read will not block). 0 or errno.
int32_t gardenspawn_wait_readable(int32_t fd)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    for (;;)
    {
        int r = poll(&p, 1, -1);
        if (r > 0) return 0;
        if (r < 0 && errno != EINTR) return errno;
    }
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
