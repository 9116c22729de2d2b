/* Pseudo-terminals: every container has a devpts of its own, but the kernel counts the ptys of all devpts instances
 * but the host's first against one limit (kernel.pty.max less kernel.pty.reserve: 3072 by default). One container
 * holding them all would leave no other container a tty (`garden run --tty`, sshd, script).
 *
 *   ptys hold FILE   opens /dev/ptmx until the kernel refuses, writes "held N ptys: WHY" to FILE, sleeps until killed.
 *   ptys probe       opens one; exits 0 when the kernel gave it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char** argv)
{
    if (argc == 3 && strcmp(argv[1], "hold") == 0)
    {
        struct rlimit r;
        getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        long held = 0;
        int why;
        for (;;)
        {
            if (open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC) < 0)
            {
                why = errno;
                break;
            }
            held++;
        }
        FILE* f = fopen(argv[2], "w");
        if (f == NULL) return 2;
        fprintf(f, "held %ld ptys: %s\n", held, strerror(why));
        fclose(f);
        for (;;) pause();
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0)
    {
        if (open("/dev/ptmx", O_RDWR | O_NOCTTY) < 0)
        {
            printf("ptmx: %s\n", strerror(errno));
            return 1;
        }
        printf("pty\n");
        return 0;
    }
    fprintf(stderr, "usage: ptys hold FILE | ptys probe\n");
    return 2;
}
