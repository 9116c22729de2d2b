using System.Buffers.Binary;

namespace Garden.Linux.Tests;

/// <summary>A classic BPF interpreter for seccomp programs (what the kernel runs for each syscall), for tests that compare
/// two programs on every input that matters: the instructions libseccomp and runc's stub emit (load word absolute or
/// immediate, scratch memory, AND, the four conditional jumps, ja, return). Anything else fails the test.</summary>
public static class ClassicBpf
{
    /// <summary>The program's answer (SECCOMP_RET_*) for one syscall: its number, AUDIT_ARCH_* and six arguments.</summary>
    public static uint Run(ReadOnlySpan<byte> program, int nr, uint arch, ReadOnlySpan<ulong> args) => Run(program, nr, arch, args, out _);

    /// <summary>The same, and how many instructions it ran to answer (what the kernel runs for that syscall).</summary>
    public static uint Run(ReadOnlySpan<byte> program, int nr, uint arch, ReadOnlySpan<ulong> args, out int steps)
    {
        steps = 0;
        Span<byte> data = stackalloc byte[64]; // struct seccomp_data
        BinaryPrimitives.WriteInt32LittleEndian(data, nr);
        BinaryPrimitives.WriteUInt32LittleEndian(data[4..], arch);
        for (var i = 0; i < 6; i++) BinaryPrimitives.WriteUInt64LittleEndian(data[(16 + 8 * i)..], i < args.Length ? args[i] : 0);
        Span<uint> memory = stackalloc uint[16];
        uint a = 0;
        var count = program.Length / 8;
        for (var pc = 0; pc < count; pc++)
        {
            steps++;
            var insn = program.Slice(pc * 8, 8);
            var code = BinaryPrimitives.ReadUInt16LittleEndian(insn);
            var (jt, jf) = (insn[2], insn[3]);
            var k = BinaryPrimitives.ReadUInt32LittleEndian(insn[4..]);
            switch (code)
            {
                case 0x20: a = BinaryPrimitives.ReadUInt32LittleEndian(data[(int)k..]); break; // ld [k]
                case 0x00: a = k; break; // ld #k
                case 0x60: a = memory[(int)k]; break; // ld M[k]
                case 0x02: memory[(int)k] = a; break; // st M[k]
                case 0x54: a &= k; break; // and #k
                case 0x05: pc += (int)k; break; // ja
                case 0x15: pc += a == k ? jt : jf; break;
                case 0x25: pc += a > k ? jt : jf; break;
                case 0x35: pc += a >= k ? jt : jf; break;
                case 0x45: pc += (a & k) != 0 ? jt : jf; break;
                case 0x06: return k; // ret #k
                case 0x16: return a; // ret a
                default: throw new NotSupportedException($"BPF opcode 0x{code:x} at {pc}");
            }
        }
        throw new InvalidOperationException("the program ran off its end");
    }
}
