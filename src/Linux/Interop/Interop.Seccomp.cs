using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

/// <summary>libseccomp (libseccomp.so.2, which runc links: a host that runs runc has it), used once per gardend to compile
/// the containers' seccomp profile into a BPF program (<see cref="Runtime.SeccompCompiler"/>), the calls runc makes for every
/// container it starts. Nothing here loads a filter into gardend.</summary>
internal static unsafe partial class Sys
{
    private const string LibSeccomp = "libseccomp.so.2";

    /// <summary>libseccomp's struct scmp_arg_cmp: the argument's index, the comparison, and its one or two operands.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ScmpArgCmp
    {
        public uint Arg;
        public int Op;
        public ulong DatumA;
        public ulong DatumB;
    }

    /// <summary>The value libseccomp's name lookups give for a name it does not know (__NR_SCMP_ERROR).</summary>
    public const int ScmpUnknownSyscall = -1;

    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_init")]
    public static partial nint SeccompInit(uint defaultAction);

    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_release")]
    public static partial void SeccompRelease(nint ctx);

    /// <summary>0, or -EEXIST when the filter has the architecture already (the native one is there from the start).</summary>
    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_arch_add")]
    public static partial int SeccompArchAdd(nint ctx, uint archToken);

    /// <summary>The token of an architecture by libseccomp's name ("x86_64", "x86", "x32", "aarch64", "arm"), 0 if unknown.</summary>
    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_arch_resolve_name", StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint SeccompArchResolveName(string name);

    /// <summary>The number of a syscall as rules take it (the native one, or a pseudo-number for a syscall only another
    /// architecture of the filter has); <see cref="ScmpUnknownSyscall"/> if libseccomp does not know the name.</summary>
    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_syscall_resolve_name", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SeccompSyscallResolveName(string name);

    /// <summary>The number of a syscall on one architecture; negative if it has none there.</summary>
    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_syscall_resolve_name_arch", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SeccompSyscallResolveNameArch(uint archToken, string name);

    /// <summary>libseccomp's scmp_filter_attr SCMP_FLTATR_CTL_OPTIMIZE (libseccomp 2.5+): 2 lays the syscall numbers out as a
    /// binary tree.</summary>
    public const int ScmpFltatrCtlOptimize = 8;

    /// <summary>0, or -errno (-EINVAL: this libseccomp does not know the attribute or the value).</summary>
    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_attr_set")]
    public static partial int SeccompAttrSet(nint ctx, int attribute, uint value);

    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_rule_add_array")]
    public static partial int SeccompRuleAddArray(nint ctx, uint action, int syscall, uint argCount, ScmpArgCmp* args);

    /// <summary>Writes the filter's BPF program (struct sock_filter[]) to the descriptor.</summary>
    [LibraryImport(LibSeccomp, EntryPoint = "seccomp_export_bpf")]
    public static partial int SeccompExportBpf(nint ctx, int fd);
}
