// garden-agent ns-holder: holds a new user namespace and a network namespace it owns, for gardend.
// unshare(CLONE_NEWUSER) needs a single-threaded process, and a .NET process never is: so this runs as an ELF
// constructor, before the NativeAOT runtime starts (as runc's nsexec runs before the Go runtime), and never returns.
// Protocol (fd 3, a socket pair end gardend handed over): after unshare, write "PID\n"; then wait until gardend closes
// its end (or dies) and exit. gardend writes uid_map/gid_map, binds the network namespace and lets runc join both.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
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
    if (argc != 2 || argv == NULL || argv[1] == NULL || strcmp(argv[1], "ns-holder") != 0) return;

    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) holder_fail("unshare(CLONE_NEWUSER|CLONE_NEWNET)");
    // Nothing may ptrace it or read its memory through the new namespace's root.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

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
