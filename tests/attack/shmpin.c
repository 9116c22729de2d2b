/* Pins MIB MiB of memory in SysV shm segments of the container's IPC namespace, detaches and exits: no process holds
 * them. Unless the namespace removes orphaned segments (kernel.shm_rmid_forced), they outlive every process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 1024, chunk = 256, done = 0;
    while (done < mib) {
        long n = mib - done < chunk ? mib - done : chunk;
        int id = shmget(IPC_PRIVATE, n << 20, IPC_CREAT | 0600);
        if (id < 0) { perror("shmget"); break; }
        char *p = shmat(id, 0, 0); if (p == (void *)-1) { perror("shmat"); break; }
        memset(p, 0xa5, n << 20); shmdt(p); done += n;
    }
    printf("pinned %ld MiB in SysV shm; exiting\n", done); return 0;
}
