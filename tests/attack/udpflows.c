/* UDP datagrams to DST_IP, each to another port: one connection tracking entry per flow, in the one table the host and
 * every container share (nf_conntrack_max). Usage: udpflows DST_IP FLOWS; prints "sent N of FLOWS". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: udpflows DST_IP FLOWS\n"); return 2; }
    long flows = atol(argv[2]); struct sockaddr_in d = {0}; d.sin_family = AF_INET; inet_aton(argv[1], &d.sin_addr);
    long n = 0; int s = -1;
    for (long i = 0; i < flows; i++) {
        if (i % 60000 == 0) { if (s >= 0) close(s); s = socket(AF_INET, SOCK_DGRAM, 0); }
        d.sin_port = htons(1 + (i % 60000) + 1024 > 65535 ? 1 : 1024 + (i % 60000));
        if (sendto(s, "x", 1, 0, (struct sockaddr *)&d, sizeof d) == 1) n++;
        if (i % 500 == 0) usleep(1000);
    }
    printf("sent %ld of %ld\n", n, flows); return 0;
}
