using System.Text.Json;
using System.Text.Json.Nodes;

namespace Garden.Linux.Runtime;

/// <summary>What the bundle of one container holds; <see cref="OciBundle"/> turns it into runc's config.json.</summary>
public sealed record BundleSpec(
    string Handle,
    string RootfsPath,
    string AgentBinary,
    string AgentSocketPath,
    string AgentLogPath, // where gardend appends the agent's log (created 0600 before the agent starts); not given to the agent
    string CgroupsPath,
    bool Privileged,
    IReadOnlyList<string> Env,
    string? ProcessCgroupDir = null,
    string? NetnsPath = null,
    IReadOnlyList<BindMountSpec>? BindMounts = null,
    BundleUserNamespace? UserNamespace = null,
    string? MemoryCgroupDir = null, // v1: the process cgroup in the memory hierarchy (the memory limit is there)
    BundleJoin? Join = null,
    BundleResources? Resources = null,
    // unprivileged only: what the agent installs from a descriptor runc hands over (--seccomp-fd); RuncRuntime sets it
    AgentSeccomp AgentSeccomp = AgentSeccomp.None);

/// <summary>The seccomp program an unprivileged container's agent installs itself (<see cref="AgentSeccompFilter"/>).</summary>
public enum AgentSeccomp
{
    /// <summary>None: runc installs the filter it compiles from linux.seccomp.</summary>
    None,
    /// <summary>The whole filter, compiled by gardend: the bundle has no linux.seccomp (a container's agent only).</summary>
    Whole,
    /// <summary>Only the guard (<see cref="SeccompCompiler.GuardFilter"/>), over the filter runc installs from linux.seccomp.</summary>
    Guard,
}

/// <summary>A pea's: the namespaces of its container it joins by path (<c>/proc/INIT/ns/*</c>) instead of making its own;
/// it makes only a mount namespace (its own root). User is null for a privileged container (it has none).</summary>
public sealed record BundleJoin(string? User, string Network, string Ipc, string Pid, string Uts);

/// <summary>Limits runc writes into the cgroup it makes (a pea's own); 0 = none.</summary>
public sealed record BundleResources(ulong MemoryBytes, ulong CpuShares, ulong Pids);

/// <summary>A user namespace runc joins by path (gardend made it, with its network namespace, before runc starts);
/// runc still wants its mappings in the config.</summary>
public sealed record BundleUserNamespace(string Path, Garden.Linux.UserNamespaces.IdMapping Mapping);

/// <summary>A host file or directory bind-mounted into the container.</summary>
public sealed record BindMountSpec(string Source, string Destination, bool ReadOnly);

/// <summary>Writes OCI bundles: pid, mount, uts, ipc and network namespaces, a private root with the agent as init,
/// masked and read-only kernel paths, and an explicit capability set.</summary>
public static class OciBundle
{
    public const string AgentPathInContainer = "/.garden/agent";

    /// <summary>A pea's agent under the host's OOM killer: a container agent's standing (native/spawn.c's
    /// AGENT_OOM_SCORE_ADJ), after its processes' (500) and before gardend's.</summary>
    public const int PeaAgentOomScoreAdj = 300;

    /// <summary>What runc writes for a pea's agent: <see cref="PeaAgentOomScoreAdj"/>, or gardend's own score when that is
    /// higher (runc inherits it, and without CAP_SYS_RESOURCE, which some hosts withhold, it could not lower it: every pea
    /// would fail to start).</summary>
    public static long PeaAgentScore() => Math.Max(PeaAgentOomScoreAdj, Garden.Linux.Host.DaemonOomScore.Current());
    /// <summary>The agent gets its listening socket as fd 3 (runc --preserve-fds), then the directory of the cgroup its
    /// processes go into (fd 4) and, on cgroup v1, that cgroup's directory in the memory hierarchy (the next fd); nothing
    /// else of the host; an unprivileged container's agent then gets the sealed memory file of its seccomp program
    /// (<see cref="AgentSeccompProgram"/>), which it closes once installed. Its log goes to gardend over the socket (FollowLog), not
    /// through a descriptor, and the agent is not dumpable: nothing in the container can reach these fds.
    /// <see cref="CgroupDirs"/> lists the cgroup ones in fd order.</summary>
    public static int PreservedFds(BundleSpec spec) => 1 + CgroupDirs(spec).Count + (AgentSeccompProgram(spec) ? 1 : 0);

    /// <summary>Whether the agent installs the container's whole seccomp filter (from the descriptor after the cgroup ones)
    /// instead of runc: never for a privileged container, which has none, and never for a pea. A pea's agent is exec'd
    /// inside a running container's user and pid namespaces, where its root may ptrace it in the moment after execve
    /// (before the agent makes itself non-dumpable) and skip the seccomp(2) call; runc installs a pea's filter before that
    /// execve, so whatever is attached then is already filtered. A container's own agent is the first process of its new
    /// pid namespace: nothing of the container runs yet to attach to it.</summary>
    public static bool AgentSeccompWhole(BundleSpec spec) => spec.AgentSeccomp == AgentSeccomp.Whole && !spec.Privileged;

    /// <summary>Whether the agent is handed a seccomp program at all: the whole filter (<see cref="AgentSeccompWhole"/>), or
    /// the guard it installs over runc's filter (a pea's agent; an attacker who made it skip that call would leave it under
    /// runc's filter, as every pea was before).</summary>
    public static bool AgentSeccompProgram(BundleSpec spec) => spec.AgentSeccomp != AgentSeccomp.None && !spec.Privileged;

    public static IReadOnlyList<string> CgroupDirs(BundleSpec spec) =>
        new[] { spec.ProcessCgroupDir, spec.MemoryCgroupDir }.OfType<string>().ToList();

    private static JsonArray AgentArgs(BundleSpec spec)
    {
        var args = new JsonArray(AgentPathInContainer, "--listen-fd", "3");
        var fd = 4;
        if (spec.ProcessCgroupDir is not null) { args.Add("--cgroup-fd"); args.Add((fd++).ToString()); }
        if (spec.MemoryCgroupDir is not null) { args.Add("--memory-cgroup-fd"); args.Add((fd++).ToString()); }
        if (AgentSeccompProgram(spec)) { args.Add("--seccomp-fd"); args.Add((fd++).ToString()); }
        if (spec.Join is not null) args.Add("--pea");
        return args;
    }
    public const int HostnameMax = 49;

    /// <summary>Docker's and Garden's unprivileged default: enough to run ordinary software as root in a container.</summary>
    public static readonly IReadOnlyList<string> DefaultCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ];

    /// <summary>A privileged container's: every capability gardend itself holds in its bounding set (a host whose
    /// bounding set lacks one, such as CAP_SYS_RESOURCE, cannot give it, and runc would refuse to start).</summary>
    public static IReadOnlyList<string> PrivilegedCapabilities => HostCapabilities.Bounding;

    public static readonly IReadOnlyList<string> MaskedPaths =
    [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
    ];

    public static readonly IReadOnlyList<string> ReadonlyPaths =
        ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

    public static string Hostname(string handle) => handle.Length <= HostnameMax ? handle : handle[^HostnameMax..];

    /// <summary>Writes config.json (0600 from its first byte: it holds the Create's environment) into the bundle
    /// directory (0700).</summary>
    public static void Write(string bundleDir, BundleSpec spec)
    {
        const UnixFileMode rw = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        Directory.CreateDirectory(bundleDir, rw | UnixFileMode.UserExecute);
        var tmp = Path.Combine(bundleDir, "config.json.tmp");
        File.Delete(tmp); // an earlier one keeps its mode when truncated
        using (var file = new FileStream(tmp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = rw }))
        using (var writer = new StreamWriter(file))
            writer.Write(ToJson(spec));
        File.Move(tmp, Path.Combine(bundleDir, "config.json"), overwrite: true);
    }

    /// <summary>Whether an entry of the container's environment is left out of the agent's own: a .NET runtime knob
    /// (DOTNET_*, COMPlus_*) meant for the container's processes (their Runs get the container's environment in full) would
    /// change the agent's GC, e.g. a heap limit far below what a file transfer needs. The agent's own GC settings are
    /// compiled into it (src/Agent/Garden.Agent.csproj), none is in its environment.</summary>
    public static bool IsRuntimeKnob(string entry) =>
        entry.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase) || entry.StartsWith("COMPlus_", StringComparison.OrdinalIgnoreCase);

    public static string ToJson(BundleSpec spec)
    {
        if (spec.AgentSeccomp == AgentSeccomp.Whole && spec.Join is not null)
            throw new ArgumentException($"{spec.Handle}: a pea's agent installs no whole seccomp filter (runc does, before its execve)");
        var caps = new JsonArray((spec.Privileged ? PrivilegedCapabilities : DefaultCapabilities).Select(c => (JsonNode)c!).ToArray());
        JsonArray Caps() => caps.DeepClone().AsArray();
        var env = new JsonArray(new[] { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
            .Concat(spec.Env.Where(e => !IsRuntimeKnob(e))).Select(e => (JsonNode)e!).ToArray());

        var config = new JsonObject
        {
            ["ociVersion"] = "1.0.2",
            ["process"] = new JsonObject
            {
                ["terminal"] = false,
                ["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 },
                ["args"] = AgentArgs(spec),
                ["env"] = env,
                ["cwd"] = "/",
                ["capabilities"] = new JsonObject
                {
                    ["bounding"] = Caps(), ["effective"] = Caps(), ["permitted"] = Caps(),
                },
                ["noNewPrivileges"] = !spec.Privileged,
            },
            ["root"] = new JsonObject { ["path"] = spec.RootfsPath, ["readonly"] = false },
            ["mounts"] = Mounts(spec),
            ["linux"] = new JsonObject
            {
                ["cgroupsPath"] = spec.CgroupsPath,
                ["namespaces"] = Namespaces(spec),
                ["resources"] = new JsonObject
                {
                    ["devices"] = new JsonArray(new JsonObject { ["allow"] = false, ["access"] = "rwm" }),
                },
                ["maskedPaths"] = new JsonArray(MaskedPaths.Select(p => (JsonNode)p!).ToArray()),
                ["readonlyPaths"] = new JsonArray(ReadonlyPaths.Select(p => (JsonNode)p!).ToArray()),
                ["rootfsPropagation"] = "private",
            },
        };
        // A pea's agent runs from a file it cannot read (PeaAgentBinary) and so cannot write its own oom_score_adj: runc sets
        // it (the agent's standing, below its processes', which the agent raises after each execve).
        if (spec.Join is not null) config["process"]!["oomScoreAdj"] = PeaAgentScore();
        // A pea shares its container's uts namespace: it sets no hostname of its own.
        if (spec.Join is null) config["hostname"] = Hostname(spec.Handle);
        // SysV shared memory no process has attached is removed (in the container's own ipc namespace; a pea shares it).
        // Without it a segment outlives every process of the container: one with no memory limit pinned 2 GiB that way
        // and exited, leaving the OOM killer nothing of its to kill but the host's own processes; Stop kept it too.
        if (spec.Join is null) config["linux"]!["sysctl"] = new JsonObject { ["kernel.shm_rmid_forced"] = "1" };
        if (spec.Resources is { } r)
        {
            var resources = config["linux"]!["resources"]!.AsObject();
            if (r.MemoryBytes > 0) resources["memory"] = new JsonObject { ["limit"] = r.MemoryBytes, ["swap"] = r.MemoryBytes };
            if (r.CpuShares > 0) resources["cpu"] = new JsonObject { ["shares"] = r.CpuShares };
            if (r.Pids > 0) resources["pids"] = new JsonObject { ["limit"] = r.Pids };
        }
        // Unprivileged containers run under the seccomp allow-list; privileged ones, like today, under none. runc compiles
        // it for each container unless the agent installs the whole program gardend compiled once (AgentSeccomp.Whole).
        if (!spec.Privileged)
        {
            if (!AgentSeccompWhole(spec)) config["linux"]!["seccomp"] = SeccompProfile.ToOci();
        }
        // A privileged container gets /dev/fuse (character 10:229), as guardian gives it: FUSE file systems need it.
        else
        {
            var linux = config["linux"]!.AsObject();
            linux["devices"] = new JsonArray(new JsonObject
            {
                ["path"] = "/dev/fuse", ["type"] = "c", ["major"] = 10, ["minor"] = 229, ["fileMode"] = 438, ["uid"] = 0, ["gid"] = 0,
            });
            linux["resources"]!["devices"]!.AsArray().Add(new JsonObject
            {
                ["allow"] = true, ["type"] = "c", ["major"] = 10, ["minor"] = 229, ["access"] = "rwm",
            });
        }
        if (spec.UserNamespace is { } userns)
        {
            var linux = config["linux"]!.AsObject();
            linux["uidMappings"] = Mappings(userns.Mapping.Uids);
            linux["gidMappings"] = Mappings(userns.Mapping.Gids);
        }
        return config.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>pid, network (gardend's, by path), ipc, uts and mount; with a user namespace, that one first (runc joins
    /// it before it makes the others, so they belong to it).</summary>
    private static JsonArray Namespaces(BundleSpec spec)
    {
        var ns = new JsonArray();
        if (spec.Join is { } join)
        {
            // a pea: its container's namespaces (the user one first, as below), and a mount namespace of its own
            JsonObject J(string type, string path) => new() { ["type"] = type, ["path"] = path };
            if (join.User is not null) ns.Add(J("user", join.User));
            ns.Add(J("pid", join.Pid));
            ns.Add(J("network", join.Network));
            ns.Add(J("ipc", join.Ipc));
            ns.Add(J("uts", join.Uts));
            ns.Add(new JsonObject { ["type"] = "mount" });
            return ns;
        }
        if (spec.UserNamespace is { } userns) ns.Add(new JsonObject { ["type"] = "user", ["path"] = userns.Path });
        ns.Add(new JsonObject { ["type"] = "pid" });
        ns.Add(spec.NetnsPath is null ? new JsonObject { ["type"] = "network" } : new JsonObject { ["type"] = "network", ["path"] = spec.NetnsPath });
        ns.Add(new JsonObject { ["type"] = "ipc" });
        ns.Add(new JsonObject { ["type"] = "uts" });
        ns.Add(new JsonObject { ["type"] = "mount" });
        return ns;
    }

    private static JsonArray Mappings(IEnumerable<Garden.Linux.UserNamespaces.IdRange> ranges) =>
        new(ranges.Select(r => (JsonNode)new JsonObject { ["containerID"] = r.ContainerId, ["hostID"] = r.HostId, ["size"] = r.Size }).ToArray());

    private static JsonArray Mounts(BundleSpec spec)
    {
        JsonObject M(string dst, string type, string src, params string[] options) => new()
        {
            ["destination"] = dst, ["type"] = type, ["source"] = src,
            ["options"] = new JsonArray(options.Select(o => (JsonNode)o!).ToArray()),
        };
        JsonArray mounts =
        [
            M("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
            M("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            M("/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
                $"max={Garden.Linux.Host.PtyQuota.PerContainer}"),
            // "tmpfs /dev/shm tmpfs" in /proc/mounts, as Garden's. A pea's has no size of its own, as Garden's peas (its
            // pages are charged to its memory cgroup like any; GATS fills a pea's with 65 MB).
            spec.Join is null
                ? M("/dev/shm", "tmpfs", "tmpfs", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k")
                : M("/dev/shm", "tmpfs", "tmpfs", "nosuid", "noexec", "nodev", "mode=1777"),
            M("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
            M("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),   // read-only, privileged too (Garden's)
            M(AgentPathInContainer, "bind", spec.AgentBinary, "bind", "ro", "nosuid", "nodev"),
        ];
        // An ordinary container sees its own cgroups read-only at /sys/fs/cgroup (runc binds each hierarchy's directory of
        // the container there), as in Garden; a privileged one gets none.
        if (!spec.Privileged) mounts.Add(M("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "relatime", "ro"));
        foreach (var b in spec.BindMounts ?? [])
            mounts.Add(M(b.Destination, "bind", b.Source, "rbind", b.ReadOnly ? "ro" : "rw", "nosuid", "nodev"));
        return mounts;
    }
}
