using System.Text.Json;
using Garden.Linux.Runtime;
using Xunit;

namespace Garden.Linux.Tests;

public sealed class OciBundleTests
{
    private static JsonElement Config(bool privileged = false, string handle = "h1", bool agentSeccomp = false) => JsonDocument.Parse(OciBundle.ToJson(
        new BundleSpec(handle, "/r", "/usr/local/bin/garden-agent", "/s/agent.sock", "/d/agent.log", "/garden-x/h1", privileged, ["A=1"],
            AgentSeccomp: agentSeccomp ? AgentSeccomp.Whole : AgentSeccomp.None))).RootElement;

    /// <summary>The agent's environment is the container's (its /proc/1/environ, as runc's init), but no .NET runtime knob
    /// of it: DOTNET_* and COMPlus_* are for the container's .NET processes (their Runs get them), and the agent's own GC
    /// settings are compiled into it, so there is none of those either.</summary>
    [Fact]
    public void The_agent_gets_the_containers_environment_without_its_dotnet_runtime_knobs()
    {
        var env = JsonDocument.Parse(OciBundle.ToJson(new BundleSpec("h1", "/r", "/usr/local/bin/garden-agent", "/s/agent.sock",
                "/d/agent.log", "/garden-x/h1", false, ["A=1", "DOTNET_GCHeapHardLimit=100000", "dotnet_gcServer=1", "COMPlus_gcServer=1", "DOTNETX=kept"])))
            .RootElement.GetProperty("process").GetProperty("env").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Equal(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "DOTNETX=kept"], env);
    }

    [Fact]
    public void Has_pid_mount_uts_ipc_and_network_namespaces()
    {
        var types = Config().GetProperty("linux").GetProperty("namespaces").EnumerateArray().Select(n => n.GetProperty("type").GetString()).Order();
        Assert.Equal(["ipc", "mount", "network", "pid", "uts"], types);
    }

    [Fact]
    public void Hostname_is_the_last_49_characters_of_the_handle()
    {
        var handle = new string('a', 10) + new string('b', 49);
        Assert.Equal(new string('b', 49), Config(handle: handle).GetProperty("hostname").GetString());
        Assert.Equal("short", Config(handle: "short").GetProperty("hostname").GetString());
    }

    [Fact]
    public void Masks_kernel_paths_and_mounts_sys_read_only_privileged_too()
    {
        var masked = Config().GetProperty("linux").GetProperty("maskedPaths").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.Contains("/proc/kcore", masked);
        Assert.Contains("/proc/keys", masked);
        Assert.Contains("/proc/timer_list", masked);
        Assert.Contains("/proc/sched_debug", masked);
        Assert.Contains("/sys/firmware", masked);
        string SysOptions(bool p) => string.Join(",", Config(p).GetProperty("mounts").EnumerateArray()
            .First(m => m.GetProperty("destination").GetString() == "/sys").GetProperty("options").EnumerateArray().Select(o => o.GetString()));
        Assert.Contains("ro", SysOptions(false).Split(','));
        Assert.Contains("ro", SysOptions(true).Split(','));   // Garden's: privileged too
    }

    /// <summary>Whoever installs the seccomp filter (runc, or the agent: <c>agentSeccomp</c>), an unprivileged container has
    /// no device but the default ones (an unprivileged bundle once took the privileged branch when the agent installed it).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Only_a_privileged_container_gets_dev_fuse(bool agentSeccomp)
    {
        string Devices(bool p) => Config(p, agentSeccomp: agentSeccomp).GetProperty("linux").TryGetProperty("devices", out var d) ? d.ToString() : "";
        Assert.Equal("", Devices(false));
        Assert.Contains("\"/dev/fuse\"", Devices(true));
        var allowed = Config(true, agentSeccomp: agentSeccomp).GetProperty("linux").GetProperty("resources").GetProperty("devices").EnumerateArray().ToList();
        Assert.False(allowed[0].GetProperty("allow").GetBoolean());   // everything denied first, then fuse alone allowed
        Assert.Equal((true, 10, 229), (allowed[1].GetProperty("allow").GetBoolean(), allowed[1].GetProperty("major").GetInt32(), allowed[1].GetProperty("minor").GetInt32()));
        Assert.Single(Config(false, agentSeccomp: agentSeccomp).GetProperty("linux").GetProperty("resources").GetProperty("devices").EnumerateArray());
    }

    /// <summary>When the agent installs the filter, runc gets none to compile and the agent gets the descriptor after the
    /// cgroup ones; a pea's filter is runc's (its agent starts among running processes of its container), and its agent
    /// gets only the socketcall guard to install over it; a privileged
    /// container has no filter either way, and no such descriptor.</summary>
    [Fact]
    public void The_agent_is_handed_the_seccomp_program_after_its_cgroup_descriptors_and_runc_none_to_compile()
    {
        var spec = new BundleSpec("h1", "/r", "/a", "/s/agent.sock", "/d/agent.log", "/garden-x/h1", false, [], ProcessCgroupDir: "/c/work",
            MemoryCgroupDir: "/m/work", AgentSeccomp: AgentSeccomp.Whole);
        var config = JsonDocument.Parse(OciBundle.ToJson(spec)).RootElement;
        Assert.False(config.GetProperty("linux").TryGetProperty("seccomp", out _));
        Assert.Equal(["/.garden/agent", "--listen-fd", "3", "--cgroup-fd", "4", "--memory-cgroup-fd", "5", "--seccomp-fd", "6"],
            config.GetProperty("process").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(4, OciBundle.PreservedFds(spec));
        Assert.True(config.GetProperty("process").GetProperty("noNewPrivileges").GetBoolean()); // what lets the agent install it

        var runcs = spec with { AgentSeccomp = AgentSeccomp.None };
        Assert.True(JsonDocument.Parse(OciBundle.ToJson(runcs)).RootElement.GetProperty("linux").TryGetProperty("seccomp", out _));
        Assert.Equal(3, OciBundle.PreservedFds(runcs));

        // a pea's agent is exec'd among its container's running processes: runc installs its filter before that execve,
        // and the agent installs the socketcall guard over it
        var join = new BundleJoin("/proc/7/ns/user", "/proc/7/ns/net", "/proc/7/ns/ipc", "/proc/7/ns/pid", "/proc/7/ns/uts");
        var pea = spec with { Join = join, AgentSeccomp = AgentSeccomp.Guard };
        var peaConfig = JsonDocument.Parse(OciBundle.ToJson(pea)).RootElement;
        Assert.True(peaConfig.GetProperty("linux").TryGetProperty("seccomp", out _));
        Assert.Contains("--seccomp-fd", peaConfig.GetProperty("process").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(4, OciBundle.PreservedFds(pea));
        // its agent runs from an unreadable copy and cannot write its own oom_score_adj: runc sets it
        Assert.Equal(Math.Max(OciBundle.PeaAgentOomScoreAdj, int.Parse(File.ReadAllText("/proc/self/oom_score_adj").Trim())),
            peaConfig.GetProperty("process").GetProperty("oomScoreAdj").GetInt32());
        Assert.False(config.GetProperty("process").TryGetProperty("oomScoreAdj", out _));
        Assert.Throws<ArgumentException>(() => OciBundle.ToJson(spec with { Join = join })); // never the whole filter for a pea
        // the guard alone (a container's too, when gardend could not compile the profile): runc's filter under it
        var guarded = JsonDocument.Parse(OciBundle.ToJson(spec with { AgentSeccomp = AgentSeccomp.Guard })).RootElement;
        Assert.True(guarded.GetProperty("linux").TryGetProperty("seccomp", out _));
        Assert.Contains("--seccomp-fd", guarded.GetProperty("process").GetProperty("args").EnumerateArray().Select(a => a.GetString()));

        var privileged = spec with { Privileged = true };
        var p = JsonDocument.Parse(OciBundle.ToJson(privileged)).RootElement;
        Assert.False(p.GetProperty("linux").TryGetProperty("seccomp", out _));
        Assert.DoesNotContain("--seccomp-fd", p.GetProperty("process").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(3, OciBundle.PreservedFds(privileged));
    }

    [Fact]
    public void Unprivileged_gets_the_default_capabilities_privileged_those_gardend_holds()
    {
        string[] Caps(bool p) => Config(p).GetProperty("process").GetProperty("capabilities").GetProperty("bounding")
            .EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(OciBundle.DefaultCapabilities, Caps(false));
        Assert.DoesNotContain("CAP_SYS_ADMIN", Caps(false));
        Assert.Equal(0xa80425fbUL, HostCapabilities.Mask(Caps(false))); // Garden's unprivileged set, as its suite reads it
        Assert.Contains("CAP_SYS_ADMIN", Caps(true));
        // every capability of this process's bounding set, and no other (this host's lacks CAP_SYS_RESOURCE: runc
        // refused the fixed list with it)
        var bnd = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("CapBnd:"))[7..].Trim();
        Assert.Equal(Convert.ToUInt64(bnd, 16), HostCapabilities.Mask(Caps(true)));
    }

    [Fact]
    public void Capability_names_follow_the_kernels_bit_numbers()
    {
        Assert.Equal(["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"], HostCapabilities.Names((1UL << 0) | (1UL << 21) | (1UL << 40)));
        Assert.Empty(HostCapabilities.Names(1UL << 63)); // a bit this build does not know is left out, never guessed
    }

    [Fact]
    public void Without_a_user_namespace_there_is_none_and_no_mapping()
    {
        var linux = Config().GetProperty("linux");
        Assert.DoesNotContain("user", linux.GetProperty("namespaces").EnumerateArray().Select(n => n.GetProperty("type").GetString()));
        Assert.False(linux.TryGetProperty("uidMappings", out _));
    }

    [Fact]
    public void A_user_namespace_is_joined_by_path_first_with_its_mappings_written_out()
    {
        var spec = new BundleSpec("h1", "/r", "/a", "/s", "/l", "/c", false, [], NetnsPath: "/run/netns/x",
            UserNamespace: new BundleUserNamespace("/proc/42/ns/user", Garden.Linux.UserNamespaces.IdMapping.Garden));
        var linux = JsonDocument.Parse(OciBundle.ToJson(spec)).RootElement.GetProperty("linux");
        var ns = linux.GetProperty("namespaces").EnumerateArray().ToList();
        Assert.Equal("user", ns[0].GetProperty("type").GetString());
        Assert.Equal("/proc/42/ns/user", ns[0].GetProperty("path").GetString());
        Assert.Equal("/run/netns/x", ns.Single(n => n.GetProperty("type").GetString() == "network").GetProperty("path").GetString());
        foreach (var key in new[] { "uidMappings", "gidMappings" })
            Assert.Equal([(0u, 4294967294u, 1u), (1u, 1u, 4294967293u)], linux.GetProperty(key).EnumerateArray()
                .Select(m => (m.GetProperty("containerID").GetUInt32(), m.GetProperty("hostID").GetUInt32(), m.GetProperty("size").GetUInt32())));
    }

    [Fact]
    public void The_init_is_the_agent_bind_mounted_read_only_with_its_socket_on_fd_3()
    {
        var c = Config();
        Assert.Equal(["/.garden/agent", "--listen-fd", "3"],
            c.GetProperty("process").GetProperty("args").EnumerateArray().Select(e => e.GetString()!).ToArray());
        var agent = c.GetProperty("mounts").EnumerateArray().First(m => m.GetProperty("destination").GetString() == "/.garden/agent");
        Assert.Equal("/usr/local/bin/garden-agent", agent.GetProperty("source").GetString());
        Assert.Contains("ro", agent.GetProperty("options").EnumerateArray().Select(o => o.GetString()));
        Assert.False(c.GetProperty("process").GetProperty("terminal").GetBoolean());
        Assert.Equal("/garden-x/h1", c.GetProperty("linux").GetProperty("cgroupsPath").GetString());
    }

    [Fact]
    public void A_pea_joins_its_containers_namespaces_makes_only_a_mount_one_and_sets_no_hostname()
    {
        var mapping = Garden.Linux.UserNamespaces.IdMapping.Garden;
        var c = JsonDocument.Parse(OciBundle.ToJson(new BundleSpec("h1+pea+p1", "/r", "/a", "/s", "/l", "/garden-x/h1/h1+pea+p1", false, [],
            UserNamespace: new BundleUserNamespace("/proc/7/ns/user", mapping),
            Join: new BundleJoin("/proc/7/ns/user", "/proc/7/ns/net", "/proc/7/ns/ipc", "/proc/7/ns/pid", "/proc/7/ns/uts"),
            Resources: new BundleResources(32 << 20, 0, 0)))).RootElement;
        var ns = c.GetProperty("linux").GetProperty("namespaces").EnumerateArray()
            .Select(n => (n.GetProperty("type").GetString(), n.TryGetProperty("path", out var p) ? p.GetString() : null)).ToList();
        Assert.Equal([("user", "/proc/7/ns/user"), ("pid", "/proc/7/ns/pid"), ("network", "/proc/7/ns/net"), ("ipc", "/proc/7/ns/ipc"),
            ("uts", "/proc/7/ns/uts"), ("mount", null)], ns);
        Assert.False(c.TryGetProperty("hostname", out _));
        Assert.Contains("--pea", c.GetProperty("process").GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.Equal(32L << 20, c.GetProperty("linux").GetProperty("resources").GetProperty("memory").GetProperty("limit").GetInt64());
        // as contained as a container: its seccomp filter, no_new_privs, its capabilities, its masked paths
        Assert.True(c.GetProperty("linux").TryGetProperty("seccomp", out _));
        Assert.True(c.GetProperty("process").GetProperty("noNewPrivileges").GetBoolean());
        Assert.Equal(OciBundle.DefaultCapabilities, c.GetProperty("process").GetProperty("capabilities").GetProperty("bounding").EnumerateArray().Select(e => e.GetString()!));
        Assert.Contains("/proc/kcore", c.GetProperty("linux").GetProperty("maskedPaths").EnumerateArray().Select(e => e.GetString()));
    }
}
