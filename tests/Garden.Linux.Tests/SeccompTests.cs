using System.Runtime.InteropServices;
using System.Text.Json;
using Garden.Linux.Runtime;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The seccomp profile as runc gets it (no kernel).</summary>
public sealed class SeccompProfileTests
{
    private static JsonElement Linux(bool privileged) => JsonDocument.Parse(OciBundle.ToJson(
        new BundleSpec("h1", "/r", "/a", "/s", "/l", "/c/h1", privileged, []))).RootElement.GetProperty("linux");

    private static List<JsonElement> Rules(JsonElement seccomp) => seccomp.GetProperty("syscalls").EnumerateArray().ToList();

    private static IEnumerable<string> Names(JsonElement rule) => rule.GetProperty("names").EnumerateArray().Select(n => n.GetString()!);

    [Fact]
    public void Unprivileged_containers_get_an_allow_list_that_fails_everything_else_with_EPERM_and_privileged_none()
    {
        Assert.False(Linux(true).TryGetProperty("seccomp", out _));
        var s = Linux(false).GetProperty("seccomp");
        Assert.Equal("SCMP_ACT_ERRNO", s.GetProperty("defaultAction").GetString());
        Assert.Equal(1, s.GetProperty("defaultErrnoRet").GetInt32());
        // No rule kills or traps: a refused call fails, the process lives on.
        Assert.All(Rules(s), r => Assert.Contains(r.GetProperty("action").GetString(), new[] { "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO" }));
        var allowed = Rules(s).Where(r => r.GetProperty("action").GetString() == "SCMP_ACT_ALLOW" && !r.TryGetProperty("args", out _))
            .SelectMany(Names).ToHashSet();
        Assert.InRange(allowed.Count, 300, 380); // Docker's list, about what Garden allows (~317)
        foreach (var call in new[] { "read", "write", "execve", "openat", "vfork", "wait4", "ioctl", "setresuid", "chroot", "arch_prctl" })
            Assert.Contains(call, allowed);
    }

    [Fact]
    public void The_profile_asks_for_no_seccomp_flags_which_runc_1_1_refuses()
    {
        // runc 1.1.5 fails every create whose profile has linux.seccomp.flags ("seccomp flags are not yet supported by
        // runc"), SECCOMP_FILTER_FLAG_SPEC_ALLOW included (measured for issue 13)
        Assert.False(Linux(false).GetProperty("seccomp").TryGetProperty("flags", out _));
    }

    [Fact]
    public void What_leads_out_of_the_container_is_never_allowed_unconditionally()
    {
        Assert.Empty(SeccompProfile.Allowed.Intersect(SeccompProfile.NeverAllowed));
        var s = Linux(false).GetProperty("seccomp");
        var named = Rules(s).Where(r => r.GetProperty("action").GetString() == "SCMP_ACT_ALLOW").SelectMany(Names).ToHashSet();
        foreach (var call in SeccompProfile.NeverAllowed) Assert.DoesNotContain(call, named);
        Assert.Equal(SeccompProfile.Allowed.Count, SeccompProfile.Allowed.Distinct().Count());
    }

    [Fact]
    public void Clone_is_allowed_only_without_namespace_flags_clone3_answers_ENOSYS_and_socket_refuses_AF_VSOCK()
    {
        var rules = Rules(Linux(false).GetProperty("seccomp"));
        var clone = Assert.Single(rules, r => Names(r).SequenceEqual(["clone"]));
        var arg = Assert.Single(clone.GetProperty("args").EnumerateArray());
        Assert.Equal("SCMP_CMP_MASKED_EQ", arg.GetProperty("op").GetString());
        Assert.Equal(0x7E020000UL, arg.GetProperty("value").GetUInt64()); // CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}
        Assert.Equal(0UL, arg.GetProperty("valueTwo").GetUInt64());
        Assert.Equal(0x10000000UL, 0x7E020000UL & 0x10000000UL); // CLONE_NEWUSER is among them

        var clone3 = Assert.Single(rules, r => Names(r).SequenceEqual(["clone3"]));
        Assert.Equal("SCMP_ACT_ERRNO", clone3.GetProperty("action").GetString());
        Assert.Equal(38, clone3.GetProperty("errnoRet").GetInt32());

        var socket = Assert.Single(rules, r => Names(r).SequenceEqual(["socket"]));
        var sarg = Assert.Single(socket.GetProperty("args").EnumerateArray());
        Assert.Equal(("SCMP_CMP_NE", 40UL), (sarg.GetProperty("op").GetString(), sarg.GetProperty("value").GetUInt64()));

        var personalities = rules.Where(r => Names(r).SequenceEqual(["personality"]))
            .Select(r => r.GetProperty("args")[0].GetProperty("value").GetUInt64()).ToList();
        Assert.Equal([0x0UL, 0x8, 0x20000, 0x20008, 0xffffffff], personalities);
    }

    [Fact]
    public void Architectures_are_the_host_family()
    {
        Assert.Equal(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], SeccompProfile.Architectures(Architecture.X64));
        Assert.Equal(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"], SeccompProfile.Architectures(Architecture.Arm64));
        var arm = SeccompProfile.ToOci(Architecture.Arm64)["syscalls"]![0]!["names"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Contains("set_tls", arm);
        Assert.DoesNotContain("arch_prctl", arm);
    }
}

/// <summary>The program gardend compiles once (SeccompCompiler, libseccomp as runc calls it plus runc's ENOSYS stub),
/// installed on a host process by tests/attack/seccomp_apply.c: no container, only the filter.</summary>
public sealed class SeccompCompilerTests
{
    private static string ProgramFile(byte[] program)
    {
        var dir = TestPaths.NewTempDir("seccomp-bpf");
        var file = Path.Combine(dir, "filter.bpf");
        File.WriteAllBytes(file, program);
        return file;
    }

    [InstallFact]
    public async Task The_compiled_program_refuses_what_a_container_must_not_do_on_both_entry_points_and_answers_newer_syscalls_ENOSYS()
    {
        var file = ProgramFile(SeccompCompiler.Compile(SeccompProfile.ToOci()));
        try
        {
            var r = await Garden.Linux.Process.Command.RunAsync(AttackTool.Path("seccomp_apply"), [file, AttackTool.Path("syscalls")]);
            Assert.True(r.ExitCode == 1, r.Stdout + r.Stderr);
            foreach (var line in (string[])
                     [
                         "unshare(CLONE_NEWUSER): EPERM", "unshare(CLONE_NEWNET): EPERM", "clone(CLONE_NEWUSER): EPERM",
                         "clone3(CLONE_NEWUSER): ENOSYS", "clone(SIGCHLD): ok", "keyctl(GET_KEYRING_ID, session): EPERM",
                         "add_key(user): EPERM", "socket(AF_VSOCK): EPERM", "mseal: ENOSYS",
                         .. I386Entry.Lines("int80 getpid: ok", "int80 unshare(CLONE_NEWUSER): EPERM",
                             "int80 socketcall(SYS_SOCKET, AF_VSOCK): EPERM"),
                         "socket(AF_VSOCK | 1<<32): EPERM", "contained",
                     ])
                Assert.True(r.Stdout.Contains(line + "\n"), $"{line} not in:\n{r.Stdout}");
        }
        finally { Directory.Delete(Path.GetDirectoryName(file)!, recursive: true); }
    }

    /// <summary>The control: the same harness with a program that allows everything lets the probe escape, so "contained"
    /// above is the compiled program's doing, not the harness's.</summary>
    [InstallFact]
    public async Task The_harness_with_an_allow_all_program_lets_the_probe_escape()
    {
        byte[] allowAll = [0x06, 0, 0, 0, 0x00, 0x00, 0xff, 0x7f]; // ret SECCOMP_RET_ALLOW
        var file = ProgramFile(allowAll);
        try
        {
            var r = await Garden.Linux.Process.Command.RunAsync(AttackTool.Path("seccomp_apply"), [file, AttackTool.Path("syscalls")]);
            Assert.True(r.ExitCode == 0, r.Stdout + r.Stderr);
            Assert.Contains(I386Entry.Line("int80 unshare(CLONE_NEWUSER): ok") + "\n", r.Stdout);
            Assert.Contains("unshare(CLONE_NEWUSER): ok\n", r.Stdout);
        }
        finally { Directory.Delete(Path.GetDirectoryName(file)!, recursive: true); }
    }

    [Fact]
    public void The_program_starts_with_runcs_stub_and_fits_the_kernels_limit()
    {
        var program = SeccompCompiler.Compile(SeccompProfile.ToOci());
        Assert.Equal(0, program.Length % 8);
        Assert.InRange(program.Length / 8, 20, 4096);
        // ld [4]: the architecture, first of all
        Assert.Equal([0x20, 0x00, 0, 0, 4, 0, 0, 0], program[..8]);
        // the socketcall guard in front: i386's socketcall(SYS_SOCKET) refused, its other calls and x86-64's socket not
        Assert.Equal(0x00050001u, ClassicBpf.Run(program, 102, 0x40000003, [1, 0]));
        Assert.Equal(0x7fff0000u, ClassicBpf.Run(program, 102, 0x40000003, [3, 0]));
        Assert.Equal(0x7fff0000u, ClassicBpf.Run(program, 41, 0xC000003E, [2, 1]));
        var guard = SeccompCompiler.GuardFilter(Architecture.X64)!;
        Assert.Equal(0x00050001u, ClassicBpf.Run(guard, 102, 0x40000003, [1, 0]));
        Assert.Equal(0x7fff0000u, ClassicBpf.Run(guard, 102, 0x40000003, [3, 0]));
        Assert.Equal(0x7fff0000u, ClassicBpf.Run(guard, 272, 0xC000003E, [0x10000000]));
        Assert.Null(SeccompCompiler.GuardFilter(Architecture.Arm64));
        // AF_VSOCK with the family's high half set (libseccomp compares 64 bits, the kernel takes the int), both entries
        foreach (var (nr, arch) in new[] { (41, 0xC000003Eu), (53, 0xC000003Eu), (359, 0x40000003u), (360, 0x40000003u) })
        {
            Assert.Equal(0x00050001u, ClassicBpf.Run(program, nr, arch, [0x1_0000_0028UL, 1]));
            Assert.Equal(0x00050001u, ClassicBpf.Run(guard, nr, arch, [0x1_0000_0028UL, 1]));
            Assert.Equal(0x7fff0000u, ClassicBpf.Run(guard, nr, arch, [0x1_0000_0002UL, 1]));
        }
        // somewhere in the stub: ret ERRNO(ENOSYS)
        Assert.Contains(Enumerable.Range(0, 40).Select(i => program[(i * 8)..(i * 8 + 8)]),
            insn => insn.SequenceEqual(new byte[] { 0x06, 0, 0, 0, 38, 0, 0x05, 0 }));
    }

    /// <summary>libseccomp lays the syscall numbers out as a binary tree (SCMP_FLTATR_CTL_OPTIMIZE 2) where runc's compile
    /// is one list: the same answers (the comparison with runc's program below), but no syscall runs through hundreds of
    /// comparisons, and the kernel, which runs the program once per syscall number when the filter is installed (its
    /// cache of what is always allowed), takes it in ~0.27 ms instead of ~0.7 ms (bench/FINDINGS-create.md), on every
    /// container start.</summary>
    [Fact]
    public void Every_syscall_is_answered_in_a_few_dozen_instructions_not_a_walk_of_the_whole_list()
    {
        int Longest(byte[] program) => Enumerable.Range(0, 470)
            .Max(nr => { ClassicBpf.Run(program, nr, 0xC000003E, [0, 0, 0, 0, 0, 0], out var steps); return steps; });
        var tree = Longest(SeccompCompiler.Compile(SeccompProfile.ToOci()));
        var list = Longest(SeccompCompiler.Compile(SeccompProfile.ToOci(), binaryTree: false));
        Assert.True(tree <= 64, $"a syscall ran {tree} instructions");
        Assert.True(list > 200, $"runc's kind of program ran at most {list}: this test cannot tell the two apart");
    }

    [Fact]
    public void A_profile_libseccomp_cannot_compile_is_an_error_naming_what_is_wrong()
    {
        var oci = SeccompProfile.ToOci();
        oci["architectures"] = new System.Text.Json.Nodes.JsonArray("SCMP_ARCH_NOSUCH");
        Assert.Contains("SCMP_ARCH_NOSUCH", Assert.Throws<NotSupportedException>(() => SeccompCompiler.Compile(oci)).Message);
        oci = SeccompProfile.ToOci();
        oci["syscalls"]![0]!["action"] = "SCMP_ACT_TRACE";
        Assert.Contains("SCMP_ACT_TRACE", Assert.Throws<NotSupportedException>(() => SeccompCompiler.Compile(oci)).Message);
    }
}

/// <summary>The filter in a real container (the agent as PID 1, installing the program gardend compiled; or runc compiling
/// the profile, the way before), seen from inside.</summary>
public sealed class SeccompContainerTests
{
    /// <summary>The attack program copied into the container's root (the overlay's merged dir on the host).</summary>
    private static string Plant(RealContainer c, string name)
    {
        var target = Path.Combine(c.RootfsPath, "tmp", name);
        File.Copy(AttackTool.Path(name), target, overwrite: true);
        File.SetUnixFileMode(target, (UnixFileMode)0b111_101_101);
        return "/tmp/" + name;
    }

    [InstallFact]
    public async Task An_unprivileged_container_is_filtered_nested_namespaces_and_keyrings_fail_with_EPERM_and_ordinary_work_goes_on()
    {
        await using var c = await RealContainer.StartAsync("seccomp");
        var (status, _) = await c.Agent.ShAsync("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; echo agent; grep Seccomp: /proc/1/status");
        var (self, agent) = (status.Split("agent\n")[0], status.Split("agent\n")[1]);
        Assert.Contains("Seccomp:\t2\n", self); // filter mode
        Assert.Contains("NoNewPrivs:\t1\n", self);
        Assert.Equal("Seccomp:\t2\n", agent); // the agent too

        var (unshare, code) = await c.Agent.ShAsync("unshare -U true 2>&1");
        Assert.NotEqual(0, code);
        Assert.Contains("Operation not permitted", unshare);

        var (probe, probeExit) = await c.Agent.ShAsync(Plant(c, "syscalls"));
        Assert.True(probeExit == 1, probe);
        Assert.Contains("unshare(CLONE_NEWUSER): EPERM", probe);
        Assert.Contains("unshare(CLONE_NEWNET): EPERM", probe);
        Assert.Contains("clone(CLONE_NEWUSER): EPERM", probe);
        Assert.Contains("clone3(CLONE_NEWUSER): ENOSYS", probe);
        Assert.Contains("clone(SIGCHLD): ok", probe);
        Assert.Contains("keyctl(GET_KEYRING_ID, session): EPERM", probe);
        Assert.Contains("keyctl(JOIN_SESSION_KEYRING): EPERM", probe);
        Assert.Contains("add_key(user): EPERM", probe);
        Assert.Contains("request_key(user): EPERM", probe);
        Assert.Contains("socket(AF_VSOCK): EPERM", probe);
        Assert.Contains("contained", probe);

        // Ordinary work: a shell, a pipeline, files, a fork bomb's worth of forks, a TCP socket on loopback.
        var (work, workExit) = await c.Agent.ShAsync(
            "ls / >/dev/null && echo abc | tr a-c x-z && mkdir -p /tmp/d && echo hi > /tmp/d/f && cat /tmp/d/f && " +
            "for i in 1 2 3 4 5; do (true) & done; wait; " +
            "(nc -l -p 7070 -e echo served &) ; sleep 0.3; nc 127.0.0.1 7070 </dev/null");
        Assert.True(workExit == 0, work);
        Assert.Equal("xyz\nhi\nserved\n", work);
    }

    /// <summary>The two ways give a container the same filter: the probe's every line is the same whether runc compiled
    /// the profile (its bundle has linux.seccomp) or the agent installed gardend's program (its bundle has none), and each
    /// process is under exactly one filter.</summary>
    [InstallFact]
    public async Task The_agents_filter_refuses_and_allows_exactly_what_runcs_compile_of_the_profile_does()
    {
        await using var agent = await RealContainer.StartAsync("seccompa");
        await using var runc = await RealContainer.StartAsync("seccompr", runcSeccomp: true);
        string Config(RealContainer c) => File.ReadAllText(Path.Combine(c.Dir, "bundle", "config.json"));
        Assert.DoesNotContain("\"seccomp\"", Config(agent));
        Assert.Contains("--seccomp-fd", Config(agent));
        Assert.Contains("\"seccomp\"", Config(runc));
        Assert.DoesNotContain("--seccomp-fd", Config(runc));

        var outputs = new List<string>();
        foreach (var c in new[] { agent, runc })
        {
            var (filters, _) = await c.Agent.ShAsync("grep -h Seccomp_filters: /proc/self/status /proc/1/status");
            Assert.Equal("Seccomp_filters:\t1\nSeccomp_filters:\t1\n", filters);
            var (probe, exit) = await c.Agent.ShAsync(Plant(c, "syscalls"));
            Assert.True(exit == 1, probe);
            outputs.Add(probe);
        }
        // the same lines but two: the guard's, which runc's compile of the profile cannot express
        string[] guarded = I386Entry.Available
            ? ["int80 socketcall(SYS_SOCKET, AF_VSOCK): ", "socket(AF_VSOCK | 1<<32): "]
            : ["socket(AF_VSOCK | 1<<32): "];
        foreach (var line in guarded)
        {
            Assert.Contains(line + "EPERM\n", outputs[0]);
            Assert.Contains(line + "ok\n", outputs[1]);
        }
        string Without(string o) => string.Join("\n", o.Split('\n').Where(l => !guarded.Any(g => l.StartsWith(g, StringComparison.Ordinal))));
        Assert.Equal(Without(outputs[1]), Without(outputs[0]));
        Assert.Contains("mseal: ENOSYS\n", outputs[0]);
        Assert.Contains(I386Entry.Line("int80 unshare(CLONE_NEWUSER): EPERM") + "\n", outputs[0]);
        // the agent holds no descriptor of the filter's memory file once it installed it (seen from the host)
        var links = Directory.GetFiles($"/proc/{agent.InitPid}/fd").Select(f => new FileInfo(f).LinkTarget ?? "").ToList();
        Assert.NotEmpty(links);
        Assert.DoesNotContain(links, l => l.Contains("garden-seccomp"));
    }

    /// <summary>The contract of the compiled program with runc's own, read back from the kernel (PTRACE_SECCOMP_GET_FILTER
    /// on each container's init): the agent installed exactly the bytes gardend compiled, and those answer every syscall
    /// number of both x86 entry points (and x32's, and an architecture the filter does not know) with each argument that
    /// a rule looks at exactly as the program runc compiled from the same profile does.</summary>
    [InstallFact]
    public async Task The_program_the_agent_installs_answers_every_syscall_as_the_one_runc_compiles()
    {
        await using var agent = await RealContainer.StartAsync("seccompga");
        await using var runc = await RealContainer.StartAsync("seccompgr", runcSeccomp: true);
        var dir = TestPaths.NewTempDir("seccomp-dump");
        try
        {
            async Task<byte[]> Installed(RealContainer c)
            {
                var file = Path.Combine(dir, c.Handle);
                var r = await Garden.Linux.Process.Command.RunAsync(AttackTool.Path("seccomp_dump"), [c.InitPid.ToString(), file]);
                Assert.True(r.ExitCode == 0, r.Stderr);
                return File.ReadAllBytes(file);
            }
            var compiled = SeccompCompiler.Compile(SeccompProfile.ToOci());
            var installed = await Installed(agent);
            Assert.Equal(compiled, installed);
            var runcs = await Installed(runc);

            const uint x86_64 = 0xC000003E, i386 = 0x40000003, aarch64 = 0xC00000B7;
            ulong[] firsts = [0, 1, 2, 8, 0x11, 40, 0x20000, 0x20008, 0x7E020000, 0x10000000, 0x10000011, 0xffffffff, 0x100000000, 0x1_0000_0028, ulong.MaxValue];
            var numbers = Enumerable.Range(0, 600).Concat([1000, 4095, int.MaxValue, -1]).ToList();
            var differences = new List<string>();
            var checkedInputs = 0;
            var answers = new HashSet<uint>();
            var guardOnly = 0;
            // the guard's refusals: i386's socketcall(SYS_SOCKET); socket and socketpair with AF_VSOCK in the low half of
            // the family (x86-64's and x32's numbers, i386's direct calls)
            bool Guarded(uint arch, int nr, ulong first) =>
                (arch == i386 && nr == 102 && (uint)first == 1)
                || ((uint)first == 40 && ((arch == x86_64 && nr is 41 or 53 or (41 | 0x40000000) or (53 | 0x40000000)) || (arch == i386 && nr is 359 or 360)));
            foreach (var (arch, nrs) in new[]
                     {
                         (x86_64, numbers.Concat(Enumerable.Range(0, 600).Select(n => n | 0x40000000))),
                         (i386, numbers), (aarch64, numbers.Take(50)),
                     })
                foreach (var nr in nrs)
                    foreach (var first in firsts)
                    {
                        ulong[] args = [first, 0, 0, 0, 0, 0];
                        var (ours, theirs) = (ClassicBpf.Run(installed, nr, arch, args), ClassicBpf.Run(runcs, nr, arch, args));
                        checkedInputs++;
                        answers.Add(ours);
                        // the differences, on purpose (the guard): i386's socketcall(SYS_SOCKET), which runc's compile
                        // allows (libseccomp cannot carry socket's AF_VSOCK condition over to it), and AF_VSOCK with the
                        // family's high half set, which libseccomp's 64-bit comparison lets through
                        if (Guarded(arch, nr, first))
                        {
                            Assert.Equal(0x00050001u, ours); // runc's allows some of them (i386 compares 32 bits, so not all)
                            guardOnly += theirs == 0x7fff0000u ? 1 : 0;
                            continue;
                        }
                        if (ours != theirs && differences.Count < 20) differences.Add($"arch 0x{arch:x} nr {nr} arg0 0x{first:x}: 0x{ours:x} vs runc's 0x{theirs:x}");
                    }
            Assert.True(differences.Count == 0, string.Join("\n", differences));
            Assert.True(checkedInputs > 20000);
            // runc's compile let some of them through: socketcall(SYS_SOCKET), AF_VSOCK with the high half set, socketpair
            Assert.True(guardOnly >= 4, $"{guardOnly}");
            // every kind of answer was among them: allow, EPERM, ENOSYS (clone3 and the stub), and the kill of an
            // architecture the filter does not know (libseccomp's default for it)
            Assert.Superset(new HashSet<uint> { 0x7fff0000, 0x00050001, 0x00050026 }, answers);
            Assert.Contains(answers, a => a is 0x00000000 or 0x80000000); // SECCOMP_RET_KILL_THREAD / KILL_PROCESS
            Assert.NotEqual(runcs, installed); // runc's stub is laid out its own way: the equal answers are not equal bytes
            // and the comparison can tell programs apart: an allow-all program differs from runc's at unshare
            Assert.NotEqual(ClassicBpf.Run(runcs, 272, x86_64, [0x10000000]), ClassicBpf.Run([0x06, 0, 0, 0, 0, 0, 0xff, 0x7f], 272, x86_64, [0x10000000]));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>Fail closed: an agent handed a program the kernel refuses (or anything that is not a program) ends before
    /// it serves, with a line in runc's log naming why, rather than running the container unfiltered.</summary>
    [InstallFact]
    public async Task An_agent_whose_filter_cannot_be_installed_never_serves_and_says_why()
    {
        // one instruction with an opcode classic BPF does not have: seccomp(2) answers EINVAL
        using var bad = AgentSeccompFilter.FromProgram([0xff, 0xff, 0, 0, 0, 0, 0, 0]);
        await using var c = await RealContainer.StartAsync("seccompbad", seccomp: bad, ping: false);
        Assert.True(await c.Runtime.WaitStoppedAsync(c.Handle, TimeSpan.FromSeconds(10), default), "the agent kept running");
        var log = File.ReadAllText(Path.Combine(c.Dir, "bundle", RuncRuntime.StartupLog));
        Assert.Contains("cannot install the container's seccomp filter: seccomp(SECCOMP_SET_MODE_FILTER): Invalid argument", log);
        Assert.False(File.Exists(c.SocketPath) && await Pings(c), "an agent without its filter answered");
    }

    private static async Task<bool> Pings(RealContainer c)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            await c.Agent.PingAsync(cts.Token);
            return true;
        }
        catch (Exception e) when (e is not Xunit.Sdk.XunitException)
        {
            return false;
        }
    }

    /// <summary>The probe's control: without the filter (the host itself) the same program makes a user namespace and
    /// reaches the keyring, so its "contained" above is the filter's doing.</summary>
    [InstallFact]
    public async Task The_probe_escapes_where_there_is_no_filter()
    {
        var host = await Garden.Linux.Process.Command.RunAsync(AttackTool.Path("syscalls"), []);
        Assert.True(host.ExitCode == 0, host.Stdout);
        Assert.Contains("unshare(CLONE_NEWUSER): ok", host.Stdout);
        Assert.Contains("keyctl(GET_KEYRING_ID, session): ok", host.Stdout);
    }

    /// <summary>A privileged container has no filter (and the capabilities gardend holds).</summary>
    [InstallFact]
    public async Task A_privileged_container_is_not_filtered()
    {
        var c = await RealContainer.StartAsync("seccompp", privileged: true);
        await using var owned = c;
        var (status, _) = await c.Agent.ShAsync("grep Seccomp: /proc/self/status");
        Assert.Contains("Seccomp:\t0", status);
        var (probe, exit) = await c.Agent.ShAsync(Plant(c, "syscalls"));
        Assert.True(exit == 0, probe);
        Assert.Contains("unshare(CLONE_NEWUSER): ok", probe);
    }
}
