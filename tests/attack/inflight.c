/* Descriptors in flight (sent with SCM_RIGHTS, not yet received) are counted per host uid (user_struct.unix_inflight),
 * and a send is refused (ETOOMANYREFS) once that uid's count is above the sender's RLIMIT_NOFILE. With Garden's mapping
 * the root of every container is the one host uid 4294967294, so one container keeping descriptors in flight would
 * make every other container's sends fail - its agent's too, which hands each new process its pipes that way.
 *
 *   inflight hold FILE   raises its RLIMIT_NOFILE to the hard limit, sends /dev/null 253 at a time over datagram
 *                        socket pairs nobody reads until the kernel refuses, writes "held N in flight (LIMIT): WHY"
 *                        to FILE and sleeps until killed (~8 bytes of kernel memory per descriptor).
 *   inflight probe       sends one descriptor; exits 0 when the kernel took it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_fds(int sock, const int* fds, int n)
{
    char byte = 0;
    struct iovec io = {.iov_base = &byte, .iov_len = 1};
    union
    {
        char buf[CMSG_SPACE(sizeof(int) * 253)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return (int)sendmsg(sock, &m, MSG_DONTWAIT);
}

int main(int argc, char** argv)
{
    int null = open("/dev/null", O_RDONLY);
    if (null < 0) return 2;
    if (argc == 3 && strcmp(argv[1], "hold") == 0)
    {
        struct rlimit r;
        getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        int fds[253];
        for (int i = 0; i < 253; i++) fds[i] = null;
        long held = 0;
        int why = 0;
        while (why == 0)
        {
            int sp[2];
            if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) != 0)
            {
                why = errno;
                break;
            }
            for (;;)
            {
                if (send_fds(sp[0], fds, 253) < 0)
                {
                    if (errno != EAGAIN) why = errno;
                    break;
                }
                held += 253;
            }
        }
        FILE* f = fopen(argv[2], "w");
        if (f == NULL) return 2;
        fprintf(f, "held %ld in flight (%ld): %s\n", held, (long)r.rlim_cur, strerror(why));
        fclose(f);
        for (;;) pause();
    }
    if (argc == 2 && strcmp(argv[1], "probe") == 0)
    {
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) != 0) return 2;
        if (send_fds(sp[0], &null, 1) < 0)
        {
            printf("send: %s\n", strerror(errno));
            return 1;
        }
        printf("sent\n");
        return 0;
    }
    fprintf(stderr, "usage: inflight hold FILE | inflight probe\n");
    return 2;
}
