using System.Runtime.InteropServices;
using Garden.Linux.Interop;

namespace Garden.Linux.Runtime;

/// <summary>The seccomp programs of unprivileged containers, made once and held in sealed memory files that
/// <see cref="RuncRuntime"/> hands to each agent (runc --preserve-fds, the agent's --seccomp-fd), which installs the one it
/// gets on itself before anything of the container runs: a container's agent the whole filter (<see cref="SeccompProfile"/>
/// compiled by <see cref="SeccompCompiler"/>; runc compiles nothing), a pea's agent only the guard, over the filter runc
/// installed before its execve (<see cref="OciBundle.AgentSeccompWhole"/> says why). The files cannot be written,
/// grown or shrunk by anyone (their seals), so a container that kept a descriptor could only read a filter.</summary>
public sealed class AgentSeccompFilter : IDisposable
{
    private AgentSeccompFilter(byte[]? program, byte[]? guard, string? compileError = null)
    {
        File = program is null ? null : Sys.MemfdSealed("garden-seccomp", program);
        Guard = guard is null ? null : Sys.MemfdSealed("garden-seccomp-guard", guard);
        CompileError = compileError;
    }

    /// <summary>The whole filter, for a container's agent; null when gardend could not compile it (no libseccomp.so.2: a
    /// static runc), and runc compiles the profile for each container.</summary>
    internal SafeFd? File { get; }

    /// <summary>The guard, for every agent whose filter runc installs (a pea's; everyone's without <see cref="File"/>); null
    /// on a host without the x86 entries.</summary>
    internal SafeFd? Guard { get; }

    /// <summary>Why the whole filter is not compiled here, or null.</summary>
    public string? CompileError { get; }

    /// <summary>Compiles the profile of this host's architecture (throws when libseccomp refuses it), and the guard; on a
    /// host without libseccomp.so.2 only the guard (<see cref="CompileError"/> says so).</summary>
    public static AgentSeccompFilter Compile()
    {
        var guard = SeccompCompiler.GuardFilter(RuntimeInformation.OSArchitecture);
        try
        {
            return new(SeccompCompiler.Compile(SeccompProfile.ToOci()), guard);
        }
        catch (DllNotFoundException e)
        {
            return new(null, guard, e.Message);
        }
    }

    /// <summary>A filter of any program (tests: one the kernel refuses).</summary>
    internal static AgentSeccompFilter FromProgram(byte[] program) => new(program, null);

    public void Dispose()
    {
        File?.Dispose();
        Guard?.Dispose();
    }
}
