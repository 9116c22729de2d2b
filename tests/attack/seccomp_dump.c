// seccomp_dump PID FILE: writes the newest seccomp filter of process PID (struct sock_filter[], as the kernel holds it)
// to FILE. Host root only (PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN and a caller under no filter); the process is
// stopped for the moment of the read (PTRACE_SEIZE + PTRACE_INTERRUPT) and goes on when detached. Not an attack: how a
// test reads the program runc installed, to compare it with the one gardend compiles.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

static struct sock_filter insns[BPF_MAXINSNS];

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: seccomp_dump PID FILE\n"); return 2; }
    pid_t pid = (pid_t)atoi(argv[1]);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) { perror("PTRACE_SEIZE"); return 1; }
    if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) { perror("PTRACE_INTERRUPT"); return 1; }
    int st;
    if (waitpid(pid, &st, __WALL) < 0) { perror("waitpid"); return 1; }
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, insns);
    int err = errno;
    ptrace(PTRACE_DETACH, pid, 0, 0);
    if (n <= 0) { errno = err; perror("PTRACE_SECCOMP_GET_FILTER"); return 1; }
    FILE *out = fopen(argv[2], "wb");
    if (out == NULL || fwrite(insns, sizeof insns[0], (size_t)n, out) != (size_t)n || fclose(out) != 0) { perror(argv[2]); return 1; }
    return 0;
}
