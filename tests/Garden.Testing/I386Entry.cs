namespace Garden.Testing;

/// <summary>Whether this kernel has the i386 system call entry (int 0x80, IA32 emulation), asked on the host without any
/// filter (tests/attack/int80.c). Without it there is no second system call table for a container to reach, and the
/// seccomp probe (tests/attack/syscalls.c) says "int80: no i386 entry" instead of its int 0x80 lines.</summary>
public static class I386Entry
{
    public const string Missing = "int80: no i386 entry";

    private static readonly Lazy<bool> Present = new(() =>
    {
        using var p = System.Diagnostics.Process.Start(AttackTool.Path("int80"))!;
        p.WaitForExit();
        return p.ExitCode switch
        {
            0 => true,
            128 + 11 => false, // SIGSEGV: no IA32 emulation
            var other => throw new InvalidOperationException($"int80 probe: exit {other}"),
        };
    });

    public static bool Available => Present.Value;

    /// <summary>The probe's lines about the i386 entry: <paramref name="lines"/> on a kernel that has it, else the one
    /// line that says it has none.</summary>
    public static string[] Lines(params string[] lines) => Available ? lines : [Missing];

    /// <summary>One such line: <paramref name="line"/> on a kernel that has the entry, else the line that says it has none.</summary>
    public static string Line(string line) => Available ? line : Missing;
}
