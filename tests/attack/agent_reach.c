// Tries to reach another process's descriptors and memory the ways that worked against garden-agent (PID 1 of a
// container) before it was made non-dumpable, and to talk to the agent's socket from inside the container.
//
//   agent_reach MODE PID          attack PID (the agent is 1)
//   agent_reach control MODE      the same attack against a dumpable child this program forks itself, which holds a
//                                 file open for writing and serves a unix socket the way the agent does: proves the attack
//                                 code works where the kernel allows it, so a failure against PID 1 means something
//
// MODE: list      readdir /proc/PID/fd finds an entry
//       readlink  readlink /proc/PID/fd/N names where a descriptor leads
//       openw     open("/proc/PID/fd/N", O_WRONLY) succeeds (how `echo max > /proc/1/fd/N` lifted a pids limit)
//       getfd     pidfd_open(PID) + pidfd_getfd(N) copies a descriptor
//       ptrace    PTRACE_ATTACH
//       seize     PTRACE_SEIZE
//       vmread    process_vm_readv of PID's memory is permitted
//       connect   a unix socket reachable inside (any socket file under /, /proc/PID/fd/N) answers an agent Ping
//   agent_reach connect-path PATH the socket at PATH answers an agent Ping
//
// Exit 0 only when the attack worked; 1 when it was refused; 2 on a usage error. What it tried goes to stdout.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define MAXFD 64
#define CONTROL_SOCK "/tmp/agent-reach-control.sock"
#define CONTROL_FILE "/tmp/agent-reach-control.file"

static volatile unsigned long marker = 0x67617264656eUL; // what vmread reads (same address in a forked child)

// an agent Ping: 4-byte big-endian length 2, then AgentRequest{ping = 5 (LEN, empty)}
static const unsigned char ping_frame[] = {0, 0, 0, 2, 0x2a, 0x00};
// an AgentEvent{pong = 7 (LEN)} starts with tag 0x3a
#define PONG_TAG 0x3a

// Prints a refusal once per errno (64 descriptors refused alike say nothing more than one).
static void refused(const char* what, int err)
{
    static int seen[256];
    if (err > 0 && err < 256 && seen[err]++) return;
    printf("%s: %s\n", what, strerror(err));
}

static int attack_list(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR* d = opendir(path);
    if (d == NULL)
    {
        printf("list: opendir %s: %s\n", path, strerror(errno));
        return 1;
    }
    int n = 0;
    struct dirent* e;
    errno = 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    int err = errno;
    closedir(d);
    if (err != 0)
    {
        printf("list: readdir %s: %s\n", path, strerror(err));
        return 1;
    }
    printf("list: %s holds %d entries\n", path, n);
    return n > 0 ? 0 : 1;
}

static int attack_readlink(pid_t pid)
{
    int got = 0;
    for (int fd = 0; fd < MAXFD; fd++)
    {
        char path[64], target[PATH_MAX];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
        {
            if (errno != ENOENT) refused(path, errno);
            continue;
        }
        target[n] = '\0';
        printf("readlink %s -> %s\n", path, target);
        got++;
    }
    return got > 0 ? 0 : 1;
}

static int attack_openw(pid_t pid)
{
    int got = 0;
    for (int fd = 0; fd < MAXFD; fd++)
    {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
        int f = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK);
        if (f < 0)
        {
            if (errno != ENOENT) refused(path, errno);
            continue;
        }
        printf("open %s for write: ok\n", path);
        close(f);
        got++;
    }
    return got > 0 ? 0 : 1;
}

static int attack_getfd(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
    {
        printf("pidfd_open %d: %s\n", pid, strerror(errno));
        return 1;
    }
    int got = 0;
    for (int fd = 0; fd < MAXFD; fd++)
    {
        int f = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
        if (f < 0)
        {
            if (errno != EBADF) refused("pidfd_getfd", errno);
            continue;
        }
        char self[64], target[PATH_MAX];
        snprintf(self, sizeof self, "/proc/self/fd/%d", f);
        ssize_t n = readlink(self, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        printf("pidfd_getfd %d of %d: got %s\n", fd, pid, target);
        close(f);
        got++;
    }
    close(pidfd);
    return got > 0 ? 0 : 1;
}

static int attack_ptrace(pid_t pid, int seize)
{
    long r = seize ? ptrace(PTRACE_SEIZE, pid, NULL, NULL) : ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    if (r != 0)
    {
        printf("%s %d: %s\n", seize ? "PTRACE_SEIZE" : "PTRACE_ATTACH", pid, strerror(errno));
        return 1;
    }
    printf("%s %d: attached\n", seize ? "PTRACE_SEIZE" : "PTRACE_ATTACH", pid);
    if (!seize) waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return 0;
}

static int attack_vmread(pid_t pid)
{
    unsigned long value = 0;
    struct iovec local = {&value, sizeof value};
    struct iovec remote = {(void*)&marker, sizeof value};
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0 && (errno == EPERM || errno == EACCES || errno == ESRCH))
    {
        printf("process_vm_readv %d: %s\n", pid, strerror(errno));
        return 1;
    }
    // EFAULT: the kernel let us in, only the address is not mapped there
    if (n < 0) printf("process_vm_readv %d: permitted (%s at %p)\n", pid, strerror(errno), (void*)&marker);
    else printf("process_vm_readv %d: read %#lx\n", pid, value);
    return 0;
}

static int read_full(int fd, unsigned char* buf, size_t len)
{
    size_t got = 0;
    while (got < len)
    {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

// Connects to path, sends a Ping; 0 when a Pong frame comes back.
static int try_socket(const char* path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) return 1;
    strcpy(a.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 1;
    struct timeval tv = {3, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr*)&a, sizeof a) != 0)
    {
        if (errno != ENOENT && errno != ENOTDIR) printf("connect %s: %s\n", path, strerror(errno));
        close(s);
        return 1;
    }
    int result = 1;
    unsigned char head[5];
    if (write(s, ping_frame, sizeof ping_frame) != (ssize_t)sizeof ping_frame)
        printf("connect %s: connected, the ping was not taken: %s\n", path, strerror(errno));
    else if (read_full(s, head, sizeof head) != 0)
        printf("connect %s: connected, no answer (closed or refused)\n", path);
    else if (head[4] != PONG_TAG)
        printf("connect %s: answered, but not with a pong (tag %#x)\n", path, head[4]);
    else
    {
        printf("connect %s: the agent answered a ping\n", path);
        result = 0;
    }
    close(s);
    return result;
}

static int walk(const char* dir, int depth)
{
    if (depth > 12) return 1;
    DIR* d = opendir(dir);
    if (d == NULL) return 1;
    int result = 1;
    struct dirent* e;
    while ((e = readdir(d)) != NULL && result != 0)
    {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, e->d_name);
        if (strcmp(path, "/proc") == 0 || strcmp(path, "/sys") == 0 || strcmp(path, "/dev") == 0) continue;
        struct stat st;
        if (lstat(path, &st) != 0) continue;
        if (S_ISSOCK(st.st_mode)) result = try_socket(path);
        else if (S_ISDIR(st.st_mode)) result = walk(path, depth + 1);
    }
    closedir(d);
    return result;
}

static int attack_connect(pid_t pid)
{
    // the paths a process inside could know of: the old in-container default, the descriptors of the target, and every
    // socket file in the container's file system
    if (try_socket("/.garden/run/agent.sock") == 0) return 0;
    for (int fd = 0; fd < MAXFD; fd++)
    {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
        if (try_socket(path) == 0) return 0;
    }
    return walk("/", 0);
}

static int attack(const char* mode, pid_t pid)
{
    if (strcmp(mode, "list") == 0) return attack_list(pid);
    if (strcmp(mode, "readlink") == 0) return attack_readlink(pid);
    if (strcmp(mode, "openw") == 0) return attack_openw(pid);
    if (strcmp(mode, "getfd") == 0) return attack_getfd(pid);
    if (strcmp(mode, "ptrace") == 0) return attack_ptrace(pid, 0);
    if (strcmp(mode, "seize") == 0) return attack_ptrace(pid, 1);
    if (strcmp(mode, "vmread") == 0) return attack_vmread(pid);
    if (strcmp(mode, "connect") == 0) return attack_connect(pid);
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}

// A dumpable child with what the agent holds: a file open for writing and a listening socket that answers pings.
static pid_t start_control(void)
{
    unlink(CONTROL_SOCK);
    int ready[2];
    if (pipe(ready) != 0) return -1;
    pid_t pid = fork();
    if (pid != 0)
    {
        close(ready[1]);
        char c;
        if (pid < 0 || read(ready[0], &c, 1) != 1) return -1;
        close(ready[0]);
        return pid;
    }
    close(ready[0]);
    int file = open(CONTROL_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    (void)file;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, CONTROL_SOCK);
    if (bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 8) != 0) _exit(1);
    if (write(ready[1], "x", 1) != 1) _exit(1);
    close(ready[1]);
    for (;;)
    {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        unsigned char req[6];
        static const unsigned char pong[] = {0, 0, 0, 2, PONG_TAG, 0x00};
        if (read_full(c, req, sizeof req) == 0) (void)!write(c, pong, sizeof pong);
        close(c);
    }
}

int main(int argc, char** argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3)
    {
        fprintf(stderr, "usage: agent_reach MODE PID | agent_reach control MODE\n");
        return 2;
    }
    if (strcmp(argv[1], "connect-path") == 0) return try_socket(argv[2]);
    if (strcmp(argv[1], "control") == 0)
    {
        pid_t child = start_control();
        if (child < 0)
        {
            printf("control: cannot start the child: %s\n", strerror(errno));
            return 2;
        }
        int r = attack(argv[2], child);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        unlink(CONTROL_SOCK);
        unlink(CONTROL_FILE);
        return r;
    }
    return attack(argv[1], (pid_t)atoi(argv[2]));
}
