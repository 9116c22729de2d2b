/* epoll watches are counted per host uid (user_struct.epoll_watches) against fs.epoll.max_user_watches (about 4% of
 * memory's worth), and with Garden's mapping every container's root is the one host uid 4294967294: one container
 * filling it would leave every other container's processes - and its agent, which serves gardend through epoll -
 * unable to add a watch (ENOSPC).
 *
 *   epoll hold FILE [N]  watches a pipe (1000 dups of it) from as many epoll instances as it takes (each watch ~180
 *                        bytes of kernel memory, charged to its memory cgroup) until the kernel refuses or it holds N,
 *                        writes "held N watches: WHY" (WHY "Success" when it stopped at N) to FILE, sleeps until killed.
 *   epoll probe       adds one watch; exits 0 when the kernel took it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char** argv)
{
    int p[2];
    if (pipe(p) != 0) return 2;
    struct epoll_event ev = {.events = EPOLLIN};
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "hold") == 0)
    {
        long most = argc == 4 ? atol(argv[3]) : -1;
        struct rlimit r;
        getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        // watch many descriptors (dups of the pipe) from each epoll instance: fewer instances, more watches
        int fds[1000];
        int nfds = 0;
        while (nfds < 1000 && (fds[nfds] = dup(p[0])) >= 0) nfds++;
        long held = 0;
        int why = 0;
        while (why == 0 && held != most)
        {
            int ep = epoll_create1(0);
            if (ep < 0)
            {
                why = errno;
                break;
            }
            for (int i = 0; i < nfds && held != most; i++)
            {
                if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
                {
                    why = errno;
                    break;
                }
                held++;
            }
        }
        FILE* f = fopen(argv[2], "w");
        if (f == NULL) return 2;
        fprintf(f, "held %ld watches: %s\n", held, strerror(why));
        fclose(f);
        for (;;) pause();
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0)
    {
        int ep = epoll_create1(0);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0)
        {
            printf("epoll: %s\n", strerror(errno));
            return 1;
        }
        printf("watched\n");
        return 0;
    }
    fprintf(stderr, "usage: epoll hold FILE [N] | epoll probe\n");
    return 2;
}
