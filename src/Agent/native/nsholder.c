// garden-agent ns-holder: holds a new user namespace and a network namespace it owns, for gardend.
// unshare(CLONE_NEWUSER) needs a single-threaded process, and a .NET process never is: so this runs as an ELF
// constructor, before the NativeAOT runtime starts (as runc's nsexec runs before the Go runtime), and never returns.
// Protocol (fd 3, a socket pair end gardend handed over): after unshare, write "PID\n"; then wait until gardend closes
// its end (or dies) and exit. gardend writes uid_map/gid_map, binds the network namespace and lets runc join both.
//
// `garden-agent ns-holder OWNER` makes the namespace with host uid OWNER as its owner instead of root. The kernel counts
// a namespace's per-user quotas (inotify instances and watches, message queue bytes, pending signals, processes: the
// ucounts) first against the user in it, then against the namespace's owner in the namespace above: with root as
// every container's owner, all containers and host root itself share one count and one limit (fs.inotify
// .max_user_instances is 128), and one container taking them all leaves the others and the host's own services none.
// An owner of its own per container gives each the host's per-user limits for itself. The holder keeps its
// capabilities across the uid change (SECBIT_NO_SETUID_FIXUP) so that unshare works wherever root's would.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <linux/securebits.h>
#include <unistd.h>

static void holder_fail(const char* what)
{
    // stderr goes back to gardend, which names it in its error
    dprintf(2, "garden-agent ns-holder: %s: %s\n", what, strerror(errno));
    _exit(1);
}

__attribute__((constructor)) static void garden_ns_holder(int argc, char** argv, char** envp)
{
    (void)envp;
    if ((argc != 2 && argc != 3) || argv == NULL || argv[1] == NULL || strcmp(argv[1], "ns-holder") != 0) return;

    // Nothing may ptrace it or read its memory, as its owner or through the new namespace's root.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (argc == 3)
    {
        char* end = NULL;
        errno = 0;
        unsigned long long owner = strtoull(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0' || argv[2][0] == '-' || owner == 0 || owner >= 4294967295ULL)
        {
            errno = EINVAL;
            holder_fail("the owner is not a host uid other than root");
        }
        if (prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0) holder_fail("keep capabilities across the uid change");
        if (setresuid((uid_t)owner, (uid_t)owner, (uid_t)owner) != 0) holder_fail("setresuid to the owner");
    }
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) holder_fail("unshare(CLONE_NEWUSER|CLONE_NEWNET)");
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); // (a uid change resets it)

    char buf[24];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (write(3, buf, (size_t)n) != n) holder_fail("write to fd 3");
    for (;;)
    {
        char c;
        ssize_t r = read(3, &c, 1);
        if (r == 0) break;                      // gardend closed its end (or died)
        if (r < 0 && errno != EINTR) break;
    }
    _exit(0);
}
