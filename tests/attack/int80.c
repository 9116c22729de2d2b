// int80: one getpid through the i386 entry point (int 0x80). Exits 0 when the kernel answered; a kernel without IA32
// emulation has no such entry and the instruction is a general protection fault (SIGSEGV). The tests ask this, on the
// host and unfiltered, whether there is an i386 entry to attack at all.
int main(void)
{
#ifdef __x86_64__
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    return ret > 0 ? 0 : 1;
#else
    return 2;
#endif
}
