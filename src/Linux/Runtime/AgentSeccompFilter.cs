using System.Runtime.InteropServices;
using Garden.Linux.Interop;

namespace Garden.Linux.Runtime;

/// <summary>The seccomp programs of unprivileged containers, made once and held in sealed memory files that
/// <see cref="RuncRuntime"/> hands to each agent (runc --preserve-fds, the agent's --seccomp-fd), which installs the one it
/// gets on itself before anything of the container runs: a container's agent the whole filter (<see cref="SeccompProfile"/>
/// compiled by <see cref="SeccompCompiler"/>; runc compiles nothing), a pea's agent only the socketcall guard, over the
/// filter runc installed before its execve (<see cref="OciBundle.AgentSeccomp"/> says why). The files cannot be written,
/// grown or shrunk by anyone (their seals), so a container that kept a descriptor could only read a filter.</summary>
public sealed class AgentSeccompFilter : IDisposable
{
    private AgentSeccompFilter(byte[] program, byte[]? guard)
    {
        Instructions = program.Length / 8;
        File = Sys.MemfdSealed("garden-seccomp", program);
        Guard = guard is null ? null : Sys.MemfdSealed("garden-seccomp-guard", guard);
    }

    /// <summary>The whole filter, for a container's agent.</summary>
    internal SafeFd File { get; }

    /// <summary>The socketcall guard, for a pea's agent; null on a host without the i386 entry.</summary>
    internal SafeFd? Guard { get; }

    /// <summary>The length of the whole program (the guard, runc's ENOSYS stub and libseccomp's filter).</summary>
    public int Instructions { get; }

    /// <summary>Compiles the profile of this host's architecture; throws when libseccomp is missing or refuses it.</summary>
    public static AgentSeccompFilter Compile() => new(SeccompCompiler.Compile(SeccompProfile.ToOci()),
        SeccompCompiler.SocketcallGuardFilter(RuntimeInformation.OSArchitecture));

    /// <summary>A filter of any program (tests: one the kernel refuses).</summary>
    internal static AgentSeccompFilter FromProgram(byte[] program) => new(program, null);

    public void Dispose()
    {
        File.Dispose();
        Guard?.Dispose();
    }
}
