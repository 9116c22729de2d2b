namespace Garden.Linux.Runtime;

/// <summary>The agent binary peas run: a copy of the agent that no user but root can read (mode 0711, root's; a privileged
/// container's root is the host's, which reads it: this is for unprivileged containers). A pea's agent
/// is exec'd inside a running container's user and pid namespaces; exec'd from a file its caller cannot read, a process is
/// non-dumpable from its first instruction (the kernel's would_dump), so the container's root cannot ptrace it in the moment
/// before it makes itself so — where it could take its descriptors (its listening socket, its cgroup directories) or make
/// it skip the seccomp guard it installs. Its memory then belongs to the host's user namespace, so neither it nor a vfork
/// child can write its own /proc/self/oom_score_adj: runc sets the agent's (its bundle's oomScoreAdj) and the agent raises
/// each child's after its execve (native/spawn.c; what a child forks before that write keeps the agent's score, and a child
/// that execs a file it cannot read stays at it too). A container's own agent keeps the readable binary: it is the first
/// process of a new pid namespace, with nothing of its container running yet to attach to it.</summary>
public static class PeaAgentBinary
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>Makes <paramref name="copy"/> the agent's bytes with mode 0711 (written beside it and renamed over it, so a
    /// pea still running the old one keeps its file); what it did, or null when it was so already.</summary>
    public static string? Refresh(string agent, string copy)
    {
        if (File.Exists(copy) && SameBytes(agent, copy))
        {
            if (File.GetUnixFileMode(copy) == Mode) return null;
            File.SetUnixFileMode(copy, Mode);
            return $"{copy}: mode 0711";
        }
        var temp = copy + ".tmp";
        File.Copy(agent, temp, overwrite: true);
        File.SetUnixFileMode(temp, Mode);
        File.Move(temp, copy, overwrite: true);
        return $"the agent for peas: {copy}, from {agent} (mode 0711: no container can read it)";
    }

    private static bool SameBytes(string a, string b) =>
        new FileInfo(a).Length == new FileInfo(b).Length && File.ReadAllBytes(a).AsSpan().SequenceEqual(File.ReadAllBytes(b));
}
