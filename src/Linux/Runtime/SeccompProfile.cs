using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Tmds.Linux;

namespace Garden.Linux.Runtime;

/// <summary>The seccomp filter of every unprivileged container (OCI <c>linux.seccomp</c>; privileged containers get
/// none): an allow-list anchored on Docker's default profile (moby profiles/seccomp/default.json), resolved for the
/// capability set unprivileged containers get (<see cref="OciBundle.DefaultCapabilities"/>: no CAP_SYS_ADMIN, so nothing
/// that makes namespaces or mounts). A call that is not allowed fails with EPERM; nothing is ever killed. The agent (PID
/// 1) runs under it too, and every process it starts inherits it.
/// <para>Differences from Docker's profile, on purpose: io_uring_setup/enter/register are not allowed (Docker dropped
/// them in 25.0: a large kernel surface that bypasses the syscall filter for the work it queues). Syscalls Docker allows
/// only with a capability unprivileged containers lack (kcmp and pidfd_getfd with CAP_SYS_PTRACE; bpf, mount, setns and
/// unshare with CAP_SYS_ADMIN; clock_settime with CAP_SYS_TIME...) are refused, as Docker refuses them for the same set.</para>
/// <para>What the filter refuses that capabilities alone did not: unshare and clone with any CLONE_NEW* flag (a nested
/// user namespace would hand container root every capability over new namespaces, and with them kernel code that is
/// otherwise out of reach), setns, keyctl/add_key/request_key (the kernel keyring is not namespaced), AF_VSOCK sockets
/// (they lead to the hypervisor), personality flags other than the harmless ones, and every syscall not listed.</para>
/// <para>clone3 answers ENOSYS instead of EPERM: its flags live in a struct seccomp cannot look into, so it cannot be
/// allowed without namespace flags the way clone is, and ENOSYS makes glibc (2.34+) fall back to clone, which is.</para></summary>
public static class SeccompProfile
{
    /// <summary>The namespace flags of clone: it is allowed only when none of them is set.</summary>
    public static readonly ulong CloneNamespaceFlags = (ulong)(LibC.CLONE_NEWNS | LibC.CLONE_NEWCGROUP | LibC.CLONE_NEWUTS
        | LibC.CLONE_NEWIPC | LibC.CLONE_NEWUSER | LibC.CLONE_NEWPID | LibC.CLONE_NEWNET);

    /// <summary>Allowed on every architecture, whatever the arguments (Docker's unconditional list, without io_uring,
    /// plus what Docker allows from kernel 4.8 on and with CAP_SYS_CHROOT, which unprivileged containers hold).</summary>
    public static readonly IReadOnlyList<string> Allowed =
    [
        "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod", "chown",
        "chown32", "chroot", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
        "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range",
        "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
        "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
        "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
        "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
        "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
        "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64",
        "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
        "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32",
        "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
        "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
        "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule",
        "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
        "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
        "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2",
        "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
        "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
        "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect",
        "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
        "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
        "process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6", "pselect6_time64", "ptrace", "pwrite64",
        "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
        "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
        "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
        "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
        "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
        "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid",
        "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid",
        "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
        "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt",
        "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair",
        "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
        "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
        "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
        "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
        "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
        "waitpid", "write", "writev",
    ];

    /// <summary>Allowed only on the architecture family that has them.</summary>
    public static readonly IReadOnlyList<string> AllowedX86 = ["arch_prctl", "modify_ldt"];
    public static readonly IReadOnlyList<string> AllowedArm = ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"];

    /// <summary>The personalities Docker allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff
    /// (which only reads the current one).</summary>
    public static readonly IReadOnlyList<ulong> Personalities = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

    /// <summary>Refused outright, whatever else the list says: checked by the tests so an edit of <see cref="Allowed"/>
    /// cannot let one in.</summary>
    public static readonly IReadOnlyList<string> NeverAllowed =
    [
        "unshare", "setns", "clone3", "keyctl", "add_key", "request_key", "mount", "umount2", "pivot_root", "bpf",
        "perf_event_open", "kexec_load", "init_module", "finit_module", "delete_module", "open_by_handle_at", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen", "fsmount", "move_mount", "open_tree",
        "mount_setattr", "pidfd_getfd", "kcmp", "reboot", "swapon", "swapoff", "acct", "settimeofday", "clock_settime",
        "syslog", "quotactl", "lookup_dcookie", "iopl", "ioperm", "uselib", "vhangup", "nfsservctl",
    ];

    /// <summary>The seccomp architectures of a host: the native one and those its kernel also runs (x86-64 runs i386 and
    /// x32 binaries, arm64 runs arm). Another architecture's syscalls cannot be made on this host at all.</summary>
    public static IReadOnlyList<string> Architectures(Architecture arch) => arch switch
    {
        Architecture.X64 or Architecture.X86 => ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        Architecture.Arm64 or Architecture.Arm => ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => throw new PlatformNotSupportedException($"no seccomp profile for {arch}"),
    };

    /// <summary>The OCI <c>linux.seccomp</c> object for the host's architecture.</summary>
    public static JsonObject ToOci() => ToOci(RuntimeInformation.OSArchitecture);

    public static JsonObject ToOci(Architecture arch)
    {
        var x86 = arch is Architecture.X64 or Architecture.X86;
        JsonArray Names(IEnumerable<string> names) => new(names.Select(n => (JsonNode)n!).ToArray());
        JsonObject Arg(int index, ulong value, string op, ulong? valueTwo = null)
        {
            var a = new JsonObject { ["index"] = index, ["value"] = value, ["op"] = op };
            if (valueTwo is { } two) a["valueTwo"] = two;
            return a;
        }
        JsonObject Rule(IEnumerable<string> names, string action, int? errno = null, params JsonObject[] args)
        {
            var r = new JsonObject { ["names"] = Names(names), ["action"] = action };
            if (errno is { } e) r["errnoRet"] = e;
            if (args.Length > 0) r["args"] = new JsonArray(args.Select(a => (JsonNode)a).ToArray());
            return r;
        }

        var syscalls = new JsonArray
        {
            Rule(Allowed.Concat(x86 ? AllowedX86 : AllowedArm), "SCMP_ACT_ALLOW"),
            // Every address family but AF_VSOCK.
            Rule(["socket"], "SCMP_ACT_ALLOW", null, Arg(0, (ulong)(int)LibC.AF_VSOCK, "SCMP_CMP_NE")),
            // clone only without a namespace flag: (flags & CloneNamespaceFlags) == 0.
            Rule(["clone"], "SCMP_ACT_ALLOW", null, Arg(0, CloneNamespaceFlags, "SCMP_CMP_MASKED_EQ", 0)),
            Rule(["clone3"], "SCMP_ACT_ERRNO", LibC.ENOSYS),
        };
        // One rule per value: the arguments of one rule are ANDed.
        foreach (var p in Personalities) syscalls.Add(Rule(["personality"], "SCMP_ACT_ALLOW", null, Arg(0, p, "SCMP_CMP_EQ")));

        // No "flags": runc 1.1.5 refuses any (SECCOMP_FILTER_FLAG_SPEC_ALLOW included), and this host's CPU offers no SSBD
        // for seccomp to turn on (spec_store_bypass: Vulnerable; the kernel's default is prctl) — measured for issue 13.
        return new JsonObject
        {
            ["defaultAction"] = "SCMP_ACT_ERRNO",
            ["defaultErrnoRet"] = LibC.EPERM,
            ["architectures"] = Names(Architectures(arch)),
            ["syscalls"] = syscalls,
        };
    }
}
