// Prints the description of this process's session keyring ("type;uid;gid;perm;description"): a container that shares
// gardend's session keyring (runc --no-new-keyring) would see gardend's, and could read or link gardend's keys.
// Exits 0 when it could describe it.
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEYCTL_DESCRIBE 6
#define KEY_SPEC_SESSION_KEYRING -3

int main(void)
{
    char buf[512];
    long n = syscall(SYS_keyctl, KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, buf, sizeof buf - 1);
    if (n < 0) { perror("keyctl(KEYCTL_DESCRIBE, session keyring)"); return 1; }
    buf[n < (long)sizeof buf ? n : (long)sizeof buf - 1] = 0;
    printf("%s\n", buf);
    return 0;
}
