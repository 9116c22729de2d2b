// seccomp_apply PROGRAM COMMAND [ARG...]: installs the seccomp BPF program in the file PROGRAM (struct sock_filter[], as
// gardend's SeccompCompiler makes it and the agent installs it) on itself, with no_new_privs, then execs COMMAND under
// it. Not an attack: the harness that runs the attack programs under exactly the filter a container gets, on the host.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct sock_filter insns[BPF_MAXINSNS];

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: seccomp_apply PROGRAM COMMAND [ARG...]\n");
        return 125;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror(argv[1]); return 125; }
    ssize_t n = read(fd, insns, sizeof insns);
    close(fd);
    if (n <= 0 || n % (ssize_t)sizeof(struct sock_filter) != 0) { fprintf(stderr, "%s: not a BPF program\n", argv[1]); return 125; }
    struct sock_fprog prog = { .len = (unsigned short)(n / sizeof(struct sock_filter)), .filter = insns };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("PR_SET_NO_NEW_PRIVS"); return 125; }
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) { perror("seccomp"); return 125; }
    execv(argv[2], argv + 2);
    perror(argv[2]);
    return 125;
}
