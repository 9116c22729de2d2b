using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Garden.Linux.Interop;

namespace Garden.Linux.Runtime;

/// <summary>Compiles an OCI <c>linux.seccomp</c> object (<see cref="SeccompProfile.ToOci()"/>) into the BPF program
/// (struct sock_filter[]) a process installs with seccomp(SECCOMP_SET_MODE_FILTER): what runc 1.1 does inside every
/// container it starts, done once per gardend. The rules go through libseccomp exactly as runc gives them (runc's
/// InitSeccomp: the default action, every listed architecture, one rule per name with its argument conditions, names
/// libseccomp does not know skipped, rules whose action is the default one left out), and the program starts with runc's
/// ENOSYS stub (its patchbpf): a syscall numbered above the highest one the profile names, on each architecture, fails with
/// ENOSYS instead of the default EPERM, so a C library probing a syscall newer than the profile falls back to an older one
/// as it would on an older kernel. In front of both, on x86 hosts, the guard (<see cref="Guard"/>), which refuses what no
/// OCI profile can. Measured (issue 13): runc compiling this profile costs each container start ~5 ms.</summary>
public static class SeccompCompiler
{
    private const uint ActAllow = 0x7fff0000;
    private const uint ActErrnoBase = 0x00050000;
    private const uint X32SyscallBit = 0x40000000;
    private const int Enosys = 38;
    private const int Eexist = 17;
    private const int Einval = 22;
    private const int MaxInstructions = 4096; // BPF_MAXINSNS

    // the AUDIT_ARCH_* a filter sees in seccomp_data.arch
    private const uint AuditArchX86_64 = 0xC000003E, AuditArchI386 = 0x40000003, AuditArchAarch64 = 0xC00000B7, AuditArchArm = 0x40000028;

    /// <summary>The program for the profile, as the bytes of its struct sock_filter array (8 bytes per instruction).</summary>
    public static byte[] Compile(JsonObject oci) => Compile(oci, binaryTree: true);

    internal static byte[] Compile(JsonObject oci, bool binaryTree)
    {
        var defaultAction = Action((string)oci["defaultAction"]!, Number(oci["defaultErrnoRet"]));
        var architectures = oci["architectures"]!.AsArray().Select(a => (string)a!).ToList();
        var rules = oci["syscalls"]!.AsArray().Select(r => r!.AsObject()).ToList();

        var ctx = Sys.SeccompInit(defaultAction);
        if (ctx == 0) throw new InvalidOperationException("seccomp_init failed (libseccomp refused the default action)");
        try
        {
            // a libseccomp before 2.5 does not know the attribute (-EINVAL): the program is then one list, as runc's
            if (binaryTree && Sys.SeccompAttrSet(ctx, Sys.ScmpFltatrCtlOptimize, 2) is var optimized and < 0 && optimized != -Einval)
                throw new InvalidOperationException($"seccomp_attr_set(SCMP_FLTATR_CTL_OPTIMIZE, 2): errno {-optimized}");
            var tokens = architectures.Select(ArchToken).ToList();
            foreach (var (name, token) in architectures.Zip(tokens))
                if (Sys.SeccompArchAdd(ctx, token) is var rc and < 0 && rc != -Eexist)
                    throw new InvalidOperationException($"seccomp_arch_add {name}: errno {-rc}");

            foreach (var rule in rules)
            {
                var action = Action((string)rule["action"]!, Number(rule["errnoRet"]));
                if (action == defaultAction) continue; // as runc: such a rule changes nothing
                var args = rule["args"]?.AsArray().Select(a => a!.AsObject()).ToList() ?? [];
                if (args.Select(a => Number(a["index"])).Distinct().Count() != args.Count)
                    throw new NotSupportedException("a seccomp rule with two conditions on one argument");
                var conditions = args.Select(a => new Sys.ScmpArgCmp
                {
                    Arg = (uint)Number(a["index"])!.Value,
                    Op = Operator((string)a["op"]!),
                    DatumA = Number(a["value"]) ?? 0,
                    DatumB = Number(a["valueTwo"]) ?? 0,
                }).ToArray();
                foreach (var name in rule["names"]!.AsArray().Select(n => (string)n!))
                {
                    var nr = Sys.SeccompSyscallResolveName(name);
                    if (nr == Sys.ScmpUnknownSyscall) continue; // as runc: a name this libseccomp does not know
                    int added;
                    unsafe
                    {
                        fixed (Sys.ScmpArgCmp* c = conditions) added = Sys.SeccompRuleAddArray(ctx, action, nr, (uint)conditions.Length, c);
                    }
                    if (added < 0) throw new InvalidOperationException($"seccomp_rule_add {name}: errno {-added}");
                }
            }

            byte[] filter;
            using (var file = Sys.Memfd("garden-seccomp-export"))
            {
                using (var fd = new FdRef(file))
                    if (Sys.SeccompExportBpf(ctx, fd.Fd) is var rc and < 0) throw new InvalidOperationException($"seccomp_export_bpf: errno {-rc}");
                filter = Sys.ReadAll(file, "garden-seccomp-export");
            }
            var names = rules.SelectMany(r => r["names"]!.AsArray().Select(n => (string)n!)).Distinct().ToList();
            var stub = EnosysStub(tokens.Distinct().Select(t => (t, Highest(t, names))).Where(x => x.Item2 > 0).ToList());
            var guard = tokens.Contains(AuditArchX86_64) ? Guard(onPass: null) : [];
            var program = guard.Concat(stub).Concat(filter).ToArray();
            if (program.Length % 8 != 0 || program.Length / 8 > MaxInstructions)
                throw new InvalidOperationException($"the seccomp program has {program.Length} bytes: not 1..{MaxInstructions} instructions");
            return program;
        }
        finally
        {
            Sys.SeccompRelease(ctx);
        }
    }

    /// <summary>A number of the profile, whichever numeric type the JSON node was made from; null when absent.</summary>
    private static ulong? Number(JsonNode? node) => node is null ? null : ulong.Parse(node.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The guard alone, a filter of its own (a pea's agent installs it over the one runc installed, as does every
    /// agent where gardend could not compile the profile): refuses what <see cref="Guard"/> refuses, allows everything
    /// else. Null where the host has no x86 entry.</summary>
    public static byte[]? GuardFilter(System.Runtime.InteropServices.Architecture arch) =>
        arch is System.Runtime.InteropServices.Architecture.X64 or System.Runtime.InteropServices.Architecture.X86
            ? Guard(onPass: ActAllow) : null;

    /// <summary>What no OCI profile runc compiles can refuse, refused with EPERM before the rest of the program:
    /// <list type="bullet">
    /// <item>an AF_VSOCK socket made with a family whose high 32 bits are set: libseccomp compares socket's first argument
    /// as 64 bits (the profile's <c>!= AF_VSOCK</c> holds for 0x1_00000028), the kernel takes the int's low half (40);
    /// so socket and socketpair on x86-64 (and x32's numbers) and i386's direct ones are refused when that low half is
    /// AF_VSOCK;</item>
    /// <item>i386's socketcall(SYS_SOCKET): socketcall multiplexes the socket calls with their arguments behind a pointer
    /// no filter can read, and libseccomp itself allows socketcall(SYS_SOCKET) for any rule on socket. i386 programs make
    /// sockets with the direct socket call (kernel 4.3+, musl); a glibc built for older kernels (Debian's i386 one) goes
    /// through socketcall and gets EPERM.</item>
    /// </list>
    /// Anything else goes on to the rest of the program (<paramref name="onPass"/> null) or returns it.</summary>
    private static byte[] Guard(uint? onPass)
    {
        const uint vsock = 40, sysSocket = 1; // AF_VSOCK; linux/net.h's SYS_SOCKET
        const uint socket64 = 41, socketpair64 = 53, socketcall32 = 102, socket32 = 359, socketpair32 = 360;
        var asm = new Assembler();
        asm.Load(4); // seccomp_data.arch
        asm.JumpIfEqual(AuditArchX86_64, "x86_64", null);
        asm.JumpIfEqual(AuditArchI386, "i386", "pass");
        asm.Label("x86_64");
        asm.Load(0); // seccomp_data.nr
        foreach (var nr in new[] { socket64, socketpair64, socket64 | X32SyscallBit, socketpair64 | X32SyscallBit })
            asm.JumpIfEqual(nr, "family", null);
        asm.Always("pass");
        asm.Label("i386");
        asm.Load(0);
        asm.JumpIfEqual(socketcall32, "socketcall", null);
        asm.JumpIfEqual(socket32, "family", null);
        asm.JumpIfEqual(socketpair32, "family", "pass");
        asm.Label("socketcall");
        asm.Load(16); // args[0], its low half (an i386 argument has no high half)
        asm.JumpIfEqual(sysSocket, "refuse", "pass");
        asm.Label("family");
        asm.Load(16); // args[0]'s low half: the int the kernel takes
        asm.JumpIfEqual(vsock, "refuse", "pass");
        asm.Label("refuse");
        asm.Return(ActErrnoBase | 1); // EPERM
        asm.Label("pass");
        if (onPass is { } action) asm.Return(action);
        return asm.Assemble();
    }

    private static uint Action(string action, ulong? errno) => action switch
    {
        "SCMP_ACT_ALLOW" => ActAllow,
        "SCMP_ACT_ERRNO" => ActErrnoBase | (uint)((errno ?? 1) & 0xffff),
        _ => throw new NotSupportedException($"seccomp action {action}"),
    };

    private static int Operator(string op) => op switch
    {
        "SCMP_CMP_NE" => 1, "SCMP_CMP_LT" => 2, "SCMP_CMP_LE" => 3, "SCMP_CMP_EQ" => 4,
        "SCMP_CMP_GE" => 5, "SCMP_CMP_GT" => 6, "SCMP_CMP_MASKED_EQ" => 7,
        _ => throw new NotSupportedException($"seccomp operator {op}"),
    };

    private static uint ArchToken(string oci)
    {
        var name = oci.StartsWith("SCMP_ARCH_", StringComparison.Ordinal) ? oci["SCMP_ARCH_".Length..].ToLowerInvariant() : oci;
        var token = Sys.SeccompArchResolveName(name);
        return token != 0 ? token : throw new NotSupportedException($"seccomp architecture {oci}");
    }

    /// <summary>The highest number, on one architecture, of any syscall the profile names (0 if none).</summary>
    private static long Highest(uint token, IEnumerable<string> names) =>
        names.Select(n => (long)Sys.SeccompSyscallResolveNameArch(token, n)).Where(nr => nr >= 0).DefaultIfEmpty(0).Max();

    /// <summary>runc's stub, per architecture of the filter: load the architecture; on one of the filter's, load the syscall
    /// number, and above the highest the profile names there, return ENOSYS; anything else goes on into the filter (which
    /// checks the architecture again). x86-64 and x32 share AUDIT_ARCH_X86_64 and differ by bit 30 of the number.</summary>
    private static byte[] EnosysStub(IReadOnlyList<(uint Token, long Highest)> archs)
    {
        var x32 = Sys.SeccompArchResolveName("x32");
        var byAudit = archs.GroupBy(a => a.Token == x32 ? AuditArchX86_64 : Audit(a.Token)).ToList();
        var asm = new Assembler();
        asm.Load(4); // seccomp_data.arch
        foreach (var g in byAudit) asm.JumpIfEqual(g.Key, "arch" + g.Key, null);
        asm.Always("filter");
        foreach (var g in byAudit)
        {
            asm.Label("arch" + g.Key);
            asm.Load(0); // seccomp_data.nr
            var native = g.Where(a => a.Token != x32).Select(a => (long?)a.Highest).FirstOrDefault();
            var x32Highest = g.Where(a => a.Token == x32).Select(a => (long?)a.Highest).FirstOrDefault();
            if (g.Key == AuditArchX86_64)
            {
                asm.JumpIfSet(X32SyscallBit, x32Highest is null ? "filter" : "x32", null);
                if (native is { } n) asm.JumpIfGreater((uint)n, "enosys", "filter");
                else asm.Always("filter");
                if (x32Highest is { } h)
                {
                    asm.Label("x32");
                    asm.JumpIfGreater((uint)h, "enosys", "filter");
                }
            }
            else asm.JumpIfGreater((uint)native!.Value, "enosys", "filter");
        }
        asm.Label("enosys");
        asm.Return(ActErrnoBase | Enosys);
        asm.Label("filter");
        return asm.Assemble();
    }

    private static uint Audit(uint token) => token switch
    {
        AuditArchX86_64 or AuditArchI386 or AuditArchAarch64 or AuditArchArm => token, // libseccomp's tokens are AUDIT_ARCH_*
        _ => throw new NotSupportedException($"seccomp architecture token 0x{token:x}"),
    };

    /// <summary>Classic BPF with forward jumps to labels (every jump of the stub is short).</summary>
    private sealed class Assembler
    {
        private const ushort LdWAbs = 0x20, JeqK = 0x15, JgtK = 0x25, JsetK = 0x45, RetK = 0x06;
        private readonly List<(ushort Code, uint K, string? Jt, string? Jf)> _code = [];
        private readonly Dictionary<string, int> _labels = [];

        public void Load(uint offset) => _code.Add((LdWAbs, offset, null, null));
        public void JumpIfEqual(uint k, string? yes, string? no) => _code.Add((JeqK, k, yes, no));
        public void JumpIfGreater(uint k, string? yes, string? no) => _code.Add((JgtK, k, yes, no));
        public void JumpIfSet(uint k, string? yes, string? no) => _code.Add((JsetK, k, yes, no));
        /// <summary>A jump whatever the accumulator holds (jset 0 is never true).</summary>
        public void Always(string to) => _code.Add((JsetK, 0, null, to));
        public void Return(uint k) => _code.Add((RetK, k, null, null));
        public void Label(string name) => _labels[name] = _code.Count;

        public byte[] Assemble()
        {
            var bytes = new byte[_code.Count * 8];
            for (var i = 0; i < _code.Count; i++)
            {
                var (code, k, jt, jf) = _code[i];
                var span = bytes.AsSpan(i * 8, 8);
                BinaryPrimitives.WriteUInt16LittleEndian(span, code);
                span[2] = Offset(i, jt);
                span[3] = Offset(i, jf);
                BinaryPrimitives.WriteUInt32LittleEndian(span[4..], k);
            }
            return bytes;
        }

        private byte Offset(int at, string? label)
        {
            if (label is null) return 0;
            var skip = _labels[label] - (at + 1);
            return skip is >= 0 and <= 255 ? (byte)skip : throw new InvalidOperationException($"BPF jump to {label} out of range");
        }
    }
}
