// floor: the smallest Run round trip. "floor serve PATH": listens on a unix socket at PATH; for each connection reads one
// byte, vforks and execs /bin/true, waits for it, writes its exit status (one byte), closes. "floor call PATH N GAP_MS":
// N connections one after another, GAP_MS apart, each timed from connect to the answer; prints p10/p25/p50 and the first.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static int cmp(const void* a, const void* b) { double x = *(double*)a, y = *(double*)b; return x < y ? -1 : x > y; }
int main(int argc, char** argv)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
    if (strcmp(argv[1], "serve") == 0)
    {
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        unlink(argv[2]);
        if (bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 16)) { perror("listen"); return 1; }
        for (;;)
        {
            int c = accept4(l, 0, 0, SOCK_CLOEXEC);
            char b;
            if (c < 0 || read(c, &b, 1) != 1) { if (c >= 0) close(c); continue; }
            pid_t p = vfork();
            if (p == 0) { execl("/bin/true", "true", (char*)0); _exit(127); }
            int st = 0;
            waitpid(p, &st, 0);
            b = (char)WEXITSTATUS(st);
            write(c, &b, 1);
            close(c);
        }
    }
    int n = atoi(argv[3]), gap = atoi(argv[4]);
    double* t = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++)
    {
        if (gap) usleep(gap * 1000);
        double s = now();
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        char b = 1;
        if (connect(c, (struct sockaddr*)&a, sizeof a) || write(c, &b, 1) != 1 || read(c, &b, 1) != 1 || b != 0) { perror("call"); return 1; }
        close(c);
        t[i] = now() - s;
    }
    double first = t[0];
    qsort(t, n, sizeof(double), cmp);
    printf("first %.3f p10 %.3f p25 %.3f p50 %.3f ms (n=%d, gap %d ms)\n", first, t[n / 10], t[n / 4], t[n / 2], n, gap);
    return 0;
}
