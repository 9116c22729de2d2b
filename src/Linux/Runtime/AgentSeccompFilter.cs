using Garden.Linux.Interop;

namespace Garden.Linux.Runtime;

/// <summary>The seccomp program of unprivileged containers (<see cref="SeccompProfile"/> compiled by
/// <see cref="SeccompCompiler"/>), made once and held in a sealed memory file that <see cref="RuncRuntime"/> hands to
/// each container's agent (runc --preserve-fds, the agent's --seccomp-fd): the agent installs it on itself before anything
/// of the container runs, and runc compiles nothing. The file cannot be written, grown or shrunk by anyone (its seals),
/// so a container that kept the descriptor could only read the filter it runs under.</summary>
public sealed class AgentSeccompFilter : IDisposable
{
    private AgentSeccompFilter(byte[] program)
    {
        Instructions = program.Length / 8;
        File = Sys.MemfdSealed("garden-seccomp", program);
    }

    internal SafeFd File { get; }

    /// <summary>The length of the program (runc's ENOSYS stub and libseccomp's filter).</summary>
    public int Instructions { get; }

    /// <summary>Compiles the profile of this host's architecture; throws when libseccomp is missing or refuses it.</summary>
    public static AgentSeccompFilter Compile() => new(SeccompCompiler.Compile(SeccompProfile.ToOci()));

    /// <summary>A filter of any program (tests: one the kernel refuses).</summary>
    internal static AgentSeccompFilter FromProgram(byte[] program) => new(program);

    public void Dispose() => File.Dispose();
}
