/* The kernel's per-user pipe quota (fs.pipe-user-pages-soft): past it, every new pipe of that host uid gets 2 pages
 * (8 KiB) instead of 16 (64 KiB) and cannot grow. Counted per host uid, not per user namespace: with Garden's mapping
 * the root of every container is the one host uid 4294967294, so one container growing its own pipes to the limit
 * would shrink every other container's.
 *
 *   pipes hold FILE   grows pipes of its own to 1 MiB each until the kernel refuses, or it holds the soft limit's
 *                     pages and 256 more (1 GiB of pipes when there is no soft limit); each costs ~10 KiB of kernel
 *                     memory while empty. Writes "held N pages" to FILE and sleeps until killed.
 *   pipes probe       makes one pipe and prints its size ("pipe 65536"); exits 0 when it is the kernel's default. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static long read_soft_limit(void)
{
    FILE* f = fopen("/proc/sys/fs/pipe-user-pages-soft", "r");
    long v = -1;
    if (f != NULL)
    {
        if (fscanf(f, "%ld", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

int main(int argc, char** argv)
{
    if (argc == 3 && strcmp(argv[1], "hold") == 0)
    {
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0)
        {
            nofile.rlim_cur = nofile.rlim_max;
            setrlimit(RLIMIT_NOFILE, &nofile);
        }
        long soft = read_soft_limit();
        long target = soft > 0 ? soft + 256 : 262144;
        long held = 0;
        while (held < target)
        {
            int p[2];
            if (pipe(p) != 0) break;
            int size = fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
            if (size < 0)
            {
                held += fcntl(p[0], F_GETPIPE_SZ) / 4096;
                break;
            }
            held += size / 4096;
        }
        FILE* f = fopen(argv[2], "w");
        if (f == NULL) return 2;
        fprintf(f, "held %ld pages\n", held);
        fclose(f);
        for (;;) pause();
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0)
    {
        int p[2];
        if (pipe(p) != 0) return 2;
        int size = fcntl(p[0], F_GETPIPE_SZ);
        printf("pipe %d\n", size);
        return size == 65536 ? 0 : 1;
    }
    fprintf(stderr, "usage: pipes hold FILE | pipes probe\n");
    return 2;
}
