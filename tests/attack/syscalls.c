// syscalls: tries what the seccomp filter of an unprivileged container must refuse, as container root would: a nested user
// namespace (unshare, clone, clone3 with CLONE_NEWUSER: the way to every capability over new namespaces), the kernel
// keyring (keyctl, add_key, request_key: not namespaced), an AF_VSOCK socket (also with the family's high bits set, and
// through i386's socketcall), and the nested user namespace again through the i386 entry point (int 0x80), which a
// filter must cover as well. Prints one line per call, "NAME: ok" or
// "NAME: ERRNO-NAME"; exits 0 when any of the escapes worked (the attack succeeded), 1 when all were refused.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_JOIN_SESSION_KEYRING 1
#define KEY_SPEC_PROCESS_KEYRING -2
#define KEY_SPEC_SESSION_KEYRING -3

static int escaped;

static const char *name(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case ENOKEY: return "ENOKEY";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EDQUOT: return "EDQUOT";
    case ENOSPC: return "ENOSPC";
    case EUSERS: return "EUSERS";
    default: return strerrorname_np(e) ? strerrorname_np(e) : "E?";
    }
}

// escape: a success of this call is an escape; otherwise it is only reported.
static void report(const char *what, long rc, int escape)
{
    if (rc >= 0) {
        printf("%s: ok\n", what);
        if (escape) escaped = 1;
    } else printf("%s: %s\n", what, name(errno));
}

#ifdef __x86_64__
// A syscall through the i386 entry point; the kernel's result (-errno on failure), which report() takes as errno.
static long int80_2(long nr, long a1, long a2)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a1), "c"(a2) : "memory");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

static long int80(long nr, long a1)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a1) : "memory");
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}
#endif

// The child of a clone in a new user namespace: it only exits.
static int waited(long pid)
{
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid < 0 ? -1 : 0;
}

#ifdef __x86_64__
static void i386_entry(void)
{
    // The i386 entry (int 0x80, the 32-bit syscall table, AUDIT_ARCH_I386): the filter must refuse there what it refuses
    // on x86-64. A kernel without IA32 emulation (CONFIG_IA32_EMULATION off, or ia32_emulation=0) has no such entry: int
    // 0x80 is a general protection fault (SIGSEGV), so there is nothing to reach through it. Tried in a child first; any
    // other end of that child (a filter that kills, SIGSYS) is printed as it is.
    int st = 0;
    pid_t p = fork();
    if (p == 0) _exit(int80(20, 0) > 0 ? 0 : 1);
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) {
        printf("int80: no i386 entry\n");
        return;
    }
    if (WIFSIGNALED(st)) printf("int80 getpid (child): killed by signal %d\n", WTERMSIG(st));
    // unshare is 310 there; getpid (20) must work.
    report("int80 getpid", int80(20, 0), 0);
    p = fork();
    if (p == 0) {
        long r = int80(310, CLONE_NEWUSER);
        _exit(r == 0 ? 0 : (int)-r);
    }
    waitpid(p, &st, 0);
    errno = WEXITSTATUS(st);
    report("int80 unshare(CLONE_NEWUSER)", WEXITSTATUS(st) == 0 ? 0 : -1, 1);
    // socketcall (102 there), the i386 multiplexer of the socket calls: its arguments are behind a pointer, out of the
    // filter's sight, so the socket rule's AF_VSOCK refusal cannot apply to socketcall(SYS_SOCKET, {AF_VSOCK, ...}).
    {
        // the i386 kernel reads 32-bit words at a 32-bit address: a static array of this static, non-PIE binary
        static unsigned int sargs[3] = {AF_VSOCK, SOCK_STREAM, 0};
        long vfd = int80_2(102, 1, (long)(unsigned long)sargs);
        report("int80 socketcall(SYS_SOCKET, AF_VSOCK)", vfd, 0);
        if (vfd >= 0) close((int)vfd);
    }
}
#endif

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    // In a child, so that a success does not change this process.
    pid_t p = fork();
    if (p == 0) _exit(unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    int st = 0;
    waitpid(p, &st, 0);
    errno = WEXITSTATUS(st);
    report("unshare(CLONE_NEWUSER)", WEXITSTATUS(st) == 0 ? 0 : -1, 1);

    p = fork();
    if (p == 0) _exit(unshare(CLONE_NEWNET) == 0 ? 0 : errno);
    waitpid(p, &st, 0);
    errno = WEXITSTATUS(st);
    report("unshare(CLONE_NEWNET)", WEXITSTATUS(st) == 0 ? 0 : -1, 0);

    long rc = waited(syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, 0));
    report("clone(CLONE_NEWUSER)", rc, 1);

    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    rc = waited(syscall(SYS_clone3, &args, sizeof args));
    report("clone3(CLONE_NEWUSER)", rc, 1);

    // An ordinary fork through clone still works (clone without namespace flags is allowed).
    rc = waited(syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0));
    report("clone(SIGCHLD)", rc, 0);

    report("keyctl(GET_KEYRING_ID, session)", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0), 1);
    report("keyctl(JOIN_SESSION_KEYRING)", syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "garden-attack"), 1);
    report("add_key(user)", syscall(SYS_add_key, "user", "garden-attack", "secret", 6, KEY_SPEC_PROCESS_KEYRING), 1);
    report("request_key(user)", syscall(SYS_request_key, "user", "garden-attack", NULL, 0), 1);

    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    report("socket(AF_VSOCK)", fd, 0);
    if (fd >= 0) close(fd);
    // The same family with the high half of the register set: the kernel takes the int (40); a filter comparing 64 bits
    // sees another number.
    fd = (int)syscall(SYS_socket, 0x100000000UL | AF_VSOCK, SOCK_STREAM, 0);
    report("socket(AF_VSOCK | 1<<32)", fd, 0);
    if (fd >= 0) close(fd);

    // A syscall newer than any the profile names (mseal, 462 on x86-64, in the kernel since 6.10): the filter answers
    // ENOSYS, as an older kernel would, so a C library falls back (the default action alone would say EPERM).
    report("mseal", syscall(462, 0, 0, 0), 0);

#ifdef __x86_64__
    i386_entry();
#endif

    printf(escaped ? "escaped\n" : "contained\n");
    return escaped ? 0 : 1;
}
