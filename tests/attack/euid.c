/* Prints the ids it runs with. Copied into a container, made setuid root there (chmod 4755) and run by an
 * unprivileged host user from its path under gardend's state dir: it exits 0 only when it got euid 0 (the attack
 * worked), 1 otherwise. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
    return geteuid() == 0 ? 0 : 1;
}
