/* CONNS loopback TCP connections in the container's own network namespace; both ends write until their send buffers
 * are full and nobody ever reads. cgroup v1 charges TCP buffers only to memory.kmem.tcp, and only once it has a limit:
 * without one a container limited to 64 MiB queued 2.2 GiB of host memory this way. Usage: tcphog CONNS HOLD_SECONDS [PORT] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
static void sockstat(const char *when) {
    FILE *f = fopen("/proc/net/sockstat", "r"); char l[256];
    while (f && fgets(l, sizeof l, f)) if (!strncmp(l, "TCP:", 4)) printf("%s: %s", when, l);
    if (f) fclose(f);
    fflush(stdout);
}
int main(int argc, char **argv) {
    int conns = atoi(argv[1]), hold = atoi(argv[2]), port = argc > 3 ? atoi(argv[3]) : 7777;
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1; setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(port); a.sin_addr.s_addr = htonl(0x7f000001);
    if (bind(l, (void *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
    static char buf[1 << 16]; memset(buf, 'x', sizeof buf); long total = 0; int made = 0;
    sockstat("before");
    for (int i = 0; i < conns; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0); if (c < 0) { perror("socket"); break; }
        if (connect(c, (void *)&a, sizeof a)) { perror("connect"); break; }
        int s = accept(l, 0, 0); if (s < 0) { perror("accept"); break; }
        fcntl(c, F_SETFL, O_NONBLOCK); fcntl(s, F_SETFL, O_NONBLOCK);
        for (int spins = 0; spins < 50; ) { ssize_t w = write(c, buf, sizeof buf); if (w > 0) { total += w; spins = 0; } else { spins++; usleep(200); } }
        for (int spins = 0; spins < 20; ) { ssize_t w = write(s, buf, sizeof buf); if (w > 0) { total += w; spins = 0; } else { spins++; usleep(200); } }
        made++;
        if (made % 100 == 0) { printf("%d connections, %ld MiB queued\n", made, total >> 20); sockstat("now"); }
    }
    printf("%d connections, %ld MiB queued; holding %d s\n", made, total >> 20, hold); sockstat("holding"); sleep(hold); return 0;
}
