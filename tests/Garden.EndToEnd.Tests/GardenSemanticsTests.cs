using Garden.Protocol.Api;
using Garden.Protocol.Client;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>Where Garden's API says what a server does and ours once did otherwise (issue 12): a missing working directory
/// is made, a limit beyond what the kernel takes is refused naming it, an environment too large for execve is the caller's
/// error naming env, Info and CurrentLimits report one thing, and a bad network rule is quoted whole. Over gRPC and the CLI,
/// against a real gardend: what a user sees.</summary>
public sealed class GardenSemanticsTests(DaemonFixture fx) : IClassFixture<DaemonFixture>, IAsyncLifetime
{
    private Gardend D => fx.Daemon;
    private IGardenClient _client = null!;

    public Task InitializeAsync()
    {
        if (Gate.Unmet(Needs.Root | Needs.Install) is null) _client = GrpcGardenClient.ForUnixSocket(D.Socket);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
    }

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<string> Create(string prefix, params string[] flags)
    {
        var h = Unique(prefix);
        var r = await D.CliAsync(["create", "--handle", h, .. flags]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    private static ProcessSpec Sh(string script, string user = "", string dir = "") =>
        new() { Path = "sh", Args = { "-c", script }, User = user, Dir = dir };

    private async Task<ProcessResult> Run(string handle, ProcessSpec spec)
    {
        using var call = await _client.RunAsync(handle, spec);
        return await call.WaitAsync();
    }

    // ---- 1. working directory ----

    [InstallFact]
    public async Task A_missing_working_directory_is_made_with_its_parents_owned_by_the_user()
    {
        var h = await Create("wdir");
        try
        {
            // vcap may not write in /opt: the directories are made for it (as Garden and guardian do), and belong to it
            var vcap = await Run(h, Sh("pwd; stat -c '%U %G %a' /opt/work /opt/work/deeper; touch x && echo wrote", "vcap", "/opt/work/deeper"));
            Assert.Equal("/opt/work/deeper\nvcap vcap 755\nvcap vcap 755\nwrote\n", vcap.StdoutText);
            Assert.Equal(0, vcap.ExitCode);

            // what existed keeps its owner and mode
            var root = await Run(h, Sh("pwd; stat -c '%U %a' /tmp /root/new", "", "/tmp/../root/new"));
            Assert.Equal("/root/new\nroot 1777\nroot 755\n", root.StdoutText);

            // the CLI the same way
            var cli = await D.CliAsync("run", h, "--user", "1234:5678", "--dir", "/home/someone/else", "--", "sh", "-c", "pwd; stat -c '%u:%g' .");
            Assert.Equal("/home/someone/else\n1234:5678\n", cli.Stdout);

            // a file in the way is the caller's error, naming the directory
            var file = await Assert.ThrowsAsync<GardenClientException>(() => Run(h, Sh("true", "", "/etc/passwd/sub")));
            Assert.Equal("InvalidArgument", file.Code);
            Assert.StartsWith("dir: ", file.Detail);
            Assert.Contains("/etc/passwd/sub", file.Detail);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>The attack: the agent makes the directory as the container's root and the process starts there, so a path
    /// through /proc's magic links (the agent's own descriptors: its socket, the host cgroup directory it holds) or a
    /// symlink a process of the container planted towards them must not lead the mkdir, or the process's working
    /// directory, out of the container's root.</summary>
    [InstallFact]
    public async Task A_working_directory_through_proc_magic_links_is_refused_and_makes_nothing_on_the_host()
    {
        var h = await Create("wdirx");
        try
        {
            Assert.Equal(0, (await Run(h, Sh("ln -s /proc/1/fd /tmp/agentfds; ln -s /proc/self/fd /tmp/selffds"))).ExitCode);
            for (var fd = 0; fd < 12; fd++)
                foreach (var dir in new[] { $"/proc/1/fd/{fd}/escape", $"/tmp/agentfds/{fd}/escape", $"/proc/self/fd/{fd}", $"/tmp/selffds/{fd}",
                                            $"/proc/self/fd/{fd}/escape", $"/proc/1/cwd/../escape-{fd}" })
                {
                    try
                    {
                        var r = await Run(h, Sh("pwd -P; ls -d /sys/fs/cgroup 2>/dev/null; ls cgroup.procs pids.max 2>/dev/null; true", "", dir));
                        // only a path that stays an ordinary directory of the container may run (/proc/1/cwd is a magic link too)
                        Assert.Fail($"{dir}: ran ({r.StdoutText.Trim()})");
                    }
                    catch (GardenClientException e)
                    {
                        Assert.True(e.Code == "InvalidArgument" && e.Detail.StartsWith("dir: ", StringComparison.Ordinal), $"{dir}: {e.Code} {e.Detail}");
                    }
                }
            foreach (var cgroup in HostCgroups.Existing(D.CgroupParent, h))
                Assert.Empty(Directory.EnumerateDirectories(cgroup, "escape*", SearchOption.AllDirectories));
            Assert.Equal("ok\n", (await Run(h, Sh("echo ok"))).StdoutText);   // the agent still serves
        }
        finally { await D.CliAsync("destroy", h); }
    }

    // ---- 2. limits beyond what the kernel takes ----

    [InstallFact]
    public async Task A_memory_or_pids_limit_of_2_to_the_64_minus_1_is_refused_naming_the_field_and_0_means_none()
    {
        foreach (var (limits, field) in new (Limits, string)[]
                 {
                     (new Limits { MemoryBytes = ulong.MaxValue }, "memory"),
                     (new Limits { Pids = ulong.MaxValue }, "pids"),
                     (new Limits { DiskBytes = ulong.MaxValue }, "disk"),
                     (new Limits { CpuWeight = ulong.MaxValue }, "cpu weight"),
                 })
        {
            var handle = Unique("lim64");
            var e = await Assert.ThrowsAsync<GardenClientException>(() => _client.CreateAsync(new ContainerSpec { Handle = handle, Limits = limits }));
            Assert.Equal("InvalidArgument", e.Code);
            Assert.StartsWith($"{field}: ", e.Detail);
            Assert.Contains("18446744073709551615", e.Detail.Replace(",", ""));
            Assert.Empty(Host.Leftovers(D, handle));
        }

        var h = Unique("lim0");
        await _client.CreateAsync(new ContainerSpec { Handle = h, Limits = new Limits { MemoryBytes = 0, Pids = 100 } });
        try
        {
            var before = await _client.CurrentLimitsAsync(h);
            Assert.Equal(0UL, before.MemoryBytes);   // 0 = no limit, as in Garden
            foreach (var (change, field) in new (Limits, string)[]
                     {
                         (new Limits { MemoryBytes = ulong.MaxValue }, "memory"),
                         (new Limits { Pids = ulong.MaxValue }, "pids"),
                     })
            {
                var e = await Assert.ThrowsAsync<GardenClientException>(() => _client.LimitAsync(h, change));
                Assert.Equal("InvalidArgument", e.Code);
                Assert.StartsWith($"{field}: ", e.Detail);
            }
            Assert.Equal(before, await _client.CurrentLimitsAsync(h));
            Assert.Equal(before, await _client.LimitAsync(h, new Limits()));   // all 0: nothing changes
        }
        finally { await _client.DestroyAsync(h); }
    }

    // ---- 3. an environment too large for execve ----

    [InstallFact]
    public async Task An_environment_or_arguments_too_large_for_execve_are_refused_naming_env_or_args()
    {
        var h = await Create("bigenv");
        try
        {
            // one string longer than the kernel takes (MAX_ARG_STRLEN, 128 KiB)
            var one = Sh("true");
            one.Env.Add("BIG=" + new string('x', 200 << 10));
            var e = await Assert.ThrowsAsync<GardenClientException>(() => Run(h, one));
            Assert.Equal("InvalidArgument", e.Code);
            Assert.StartsWith("env: ", e.Detail);

            // many strings, together beyond the budget
            var many = Sh("true");
            for (var i = 0; i < 40; i++) many.Env.Add($"V{i}=" + new string('y', 100 << 10));
            e = await Assert.ThrowsAsync<GardenClientException>(() => Run(h, many));
            Assert.Equal("InvalidArgument", e.Code);
            Assert.StartsWith("env: ", e.Detail);

            var args = new ProcessSpec { Path = "true" };
            for (var i = 0; i < 40; i++) args.Args.Add(new string('z', 100 << 10));
            e = await Assert.ThrowsAsync<GardenClientException>(() => Run(h, args));
            Assert.Equal("InvalidArgument", e.Code);
            Assert.StartsWith("args: ", e.Detail);

            // within the budget, but a small stack limit shrinks what execve takes (a quarter of it, at least 128 KiB):
            // the kernel's E2BIG is the caller's error too, naming env and args
            var small = Sh("true");
            small.Rlimits.Add(new Rlimit { Name = "stack", Soft = 256 << 10, Hard = 256 << 10 });
            for (var i = 0; i < 4; i++) small.Env.Add($"S{i}=" + new string('s', 100 << 10));
            e = await Assert.ThrowsAsync<GardenClientException>(() => Run(h, small));
            Assert.Equal("InvalidArgument", e.Code);
            Assert.StartsWith("env", e.Detail);
            Assert.Contains("too large", e.Detail);

            var fine = Sh("echo ${#FINE}");
            fine.Env.Add("FINE=" + new string('f', 100 << 10));
            Assert.Equal($"{100 << 10}\n", (await Run(h, fine)).StdoutText);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    // ---- 4. Info's limits and CurrentLimits ----

    [InstallFact]
    public async Task Info_and_CurrentLimits_report_the_limits_as_given_0_for_none()
    {
        var h = Unique("liminfo");
        await _client.CreateAsync(new ContainerSpec { Handle = h, Limits = new Limits { DiskBytes = 64UL << 20, MemoryBytes = 100_000_000 } });
        try
        {
            var current = await _client.CurrentLimitsAsync(h);
            Assert.Equal(current, (await _client.InfoAsync(h)).Limits);
            Assert.Equal(64UL << 20, current.DiskBytes);        // not the file system's size (smaller: ext4's own blocks)
            Assert.Equal(100_000_000UL, current.MemoryBytes);  // not the page-rounded value in the cgroup
            Assert.Equal(0UL, current.CpuWeight);               // none given: not the kernel's default shares
            Assert.Equal(1024UL, current.Pids);                 // garden.default-limits gave it

            var changed = await _client.LimitAsync(h, new Limits { CpuWeight = 300 });
            Assert.Equal(300UL, changed.CpuWeight);
            Assert.Equal(64UL << 20, changed.DiskBytes);
            Assert.Equal(changed, await _client.CurrentLimitsAsync(h));
            Assert.Equal(changed, (await _client.InfoAsync(h)).Limits);
        }
        finally { await _client.DestroyAsync(h); }
    }

    // ---- 5. network rules quoted whole ----

    [InstallFact]
    public async Task A_bad_network_value_is_quoted_whole()
    {
        var h = await Create("badnet");
        try
        {
            foreach (var (start, end, whole) in new[]
                     {
                         ("not-an-ip", "", "not-an-ip"), ("10.0.0.1", "not-an-ip", "10.0.0.1-not-an-ip"), ("10.0.0.0/33", "", "10.0.0.0/33"),
                         ("1.2.3", "", "1.2.3"), ("10.0.0.9", "10.0.0.1", "10.0.0.9-10.0.0.1"), ("1.2.3.4/x-y", "", "1.2.3.4/x-y"),
                     })
            {
                var rule = new NetOutRule { Networks = { new IpRange { Start = start, End = end } } };
                var e = await Assert.ThrowsAsync<GardenClientException>(() => _client.NetOutAsync(h, rule));
                Assert.Equal("InvalidArgument", e.Code);
                Assert.Contains("network", e.Detail);
                Assert.Contains($"\"{whole}\"", e.Detail);
            }

            var create = Unique("badnet");
            foreach (var network in new[] { "not-a-network", "10.1.2.3/x-y", "10.0.0.0/33" })
            {
                var e = await Assert.ThrowsAsync<GardenClientException>(() => _client.CreateAsync(new ContainerSpec { Handle = create, Network = network }));
                Assert.Equal("InvalidArgument", e.Code);
                Assert.Contains($"\"{network}\"", e.Detail);
            }
            var netOutAtCreate = await Assert.ThrowsAsync<GardenClientException>(() => _client.CreateAsync(new ContainerSpec
            {
                Handle = create, NetOut = { new NetOutRule { Networks = { new IpRange { Start = "not-an-ip" } } } },
            }));
            Assert.Contains("\"not-an-ip\"", netOutAtCreate.Detail);
        }
        finally { await D.CliAsync("destroy", h); }
    }
    // ---- what GATS's Lifecycle specs look for ----

    [InstallFact]
    public async Task Pid_1_is_garden_init_and_a_duplicate_handle_is_in_use_in_Garden_s_words()
    {
        var h = await Create("init");
        try
        {
            Assert.Equal("Name:\tgarden-init\n", (await Run(h, new ProcessSpec { Path = "head", Args = { "-n1", "/proc/1/status" } })).StdoutText);
            var dup = await Assert.ThrowsAsync<GardenClientException>(() => _client.CreateAsync(new ContainerSpec { Handle = h }));
            Assert.Equal("AlreadyExists", dup.Code);
            Assert.Equal($"Handle '{h}' already in use", dup.Detail);
        }
        finally { await D.CliAsync("destroy", h); }
    }
    [InstallFact]
    public async Task A_process_s_env_replaces_the_container_s_entry_of_the_same_key_in_place()
    {
        var h = Unique("envmerge");
        await _client.CreateAsync(new ContainerSpec { Handle = h, Env = { "CONTAINER_ENV=1", "TEST=hi" } });
        try
        {
            var env = await Run(h, new ProcessSpec { Path = "env", Env = { "TEST=hello", "FRUIT=banana" } });
            Assert.StartsWith("CONTAINER_ENV=1\nTEST=hello\nFRUIT=banana\n", env.StdoutText);
            Assert.Single(env.StdoutText.Split('\n'), l => l.StartsWith("TEST=", StringComparison.Ordinal));
        }
        finally { await _client.DestroyAsync(h); }
    }
    [InstallFact]
    public async Task A_privileged_container_has_a_read_only_sys_and_dev_fuse_an_ordinary_one_no_fuse()
    {
        var h = Unique("privsys");
        await _client.CreateAsync(new ContainerSpec { Handle = h, Privileged = true });
        var plain = await Create("plainfuse");
        try
        {
            var mounts = (await Run(h, new ProcessSpec { Path = "cat", Args = { "/proc/mounts" } })).StdoutText;
            Assert.Contains("sysfs /sys sysfs ro,", mounts);
            var fuse = await Run(h, Sh("ls -l /dev/fuse; exec 3<>/dev/fuse && echo opened"));
            Assert.Matches(@"\Acrw-rw-rw- +1 root +root +10, +229 .*/dev/fuse\nopened\n\z", fuse.StdoutText);
            Assert.NotEqual(0, (await Run(plain, Sh("ls /dev/fuse"))).ExitCode);
        }
        finally
        {
            await D.CliAsync("destroy", plain);
            await _client.DestroyAsync(h);
        }
    }
    [InstallFact]
    public async Task A_relative_stream_in_path_is_relative_to_the_user_s_home()
    {
        var h = await Create("relstream");
        var tar = Path.Combine(D.Dir, $"{h}.tar");
        try
        {
            using (var f = File.Create(tar))
            using (var w = new System.Formats.Tar.TarWriter(f))
                w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "some-dir/some-file")
                    { DataStream = new MemoryStream("some-body"u8.ToArray()), Mode = (UnixFileMode)0b110_100_100 });
            var psi = new System.Diagnostics.ProcessStartInfo("bash", ["-c", $"exec \"$0\" --socket \"$1\" stream-in {h} . --user vcap < \"$2\"", TestPaths.CliBinary, D.Socket, tar])
                { RedirectStandardError = true };
            using (var p = System.Diagnostics.Process.Start(psi)!)
            {
                var err = await p.StandardError.ReadToEndAsync();
                await p.WaitForExitAsync();
                Assert.True(p.ExitCode == 0, err);
            }
            var r = await Run(h, Sh("cat some-dir/some-file; stat -c ' %U' /home/vcap/some-dir/some-file", "vcap"));
            Assert.Equal("some-body vcap\n", r.StdoutText);
        }
        finally { await D.CliAsync("destroy", h); }
    }
    /// <summary>GATS's reading of /proc/self/mountinfo: every cgroup hierarchy mounted read-only in an ordinary container,
    /// none in a privileged one; and the container cannot write its own limits through them.</summary>
    [InstallFact]
    public async Task An_ordinary_container_sees_its_cgroups_read_only_a_privileged_one_none()
    {
        var h = await Create("cgmount", "--pids", "77");
        var priv = Unique("cgpriv");
        await _client.CreateAsync(new ContainerSpec { Handle = priv, Privileged = true });
        try
        {
            var mountinfo = (await Run(h, new ProcessSpec { Path = "grep", Args = { "cgroup", "/proc/self/mountinfo" } })).StdoutText;
            var options = System.Text.RegularExpressions.Regex.Matches(mountinfo, @".*\s/sys/fs/cgroup/[^\s]*\s([^\s]*) - cgroup cgroup *\s([^\s]*)")
                .Where(m => m.Groups[1].Value.Contains("ro")).SelectMany(m => m.Groups[2].Value.Split(',')).ToHashSet();
            foreach (var c in new[] { "cpu", "cpuacct", "memory", "devices", "freezer", "pids" })
                Assert.True(options.Contains(c), $"{c} not mounted read-only:\n{mountinfo}");
            // the pids limit is on the cgroup its processes run in, below the container's: readable, not writable. It reads
            // 78: the limit asked plus the one slot of the agent's spawner, which lives there (README, "the spawner").
            var write = await Run(h, Sh("for f in $(find /sys/fs/cgroup/pids -name pids.max); do echo max > $f && echo wrote $f; done 2>/dev/null; " +
                                        "find /sys/fs/cgroup/pids -name pids.max | xargs cat | sort -u"));
            Assert.Equal("78\nmax\n", write.StdoutText);
            Assert.DoesNotContain(" cgroup ", (await Run(priv, new ProcessSpec { Path = "cat", Args = { "/proc/mounts" } })).StdoutText);
            Assert.Contains("tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime",
                (await Run(h, new ProcessSpec { Path = "cat", Args = { "/proc/mounts" } })).StdoutText);   // GATS reads it so
        }
        finally
        {
            await D.CliAsync("destroy", h);
            await _client.DestroyAsync(priv);
        }
    }
    /// <summary>GATS's disk limit of 10 MiB: a process writes 7 MiB into it; 10 MiB more do not fit.</summary>
    [InstallFact]
    public async Task A_10_MiB_disk_limit_holds_7_MiB_of_files()
    {
        var h = await Create("smalldisk", "--disk", "10M");
        try
        {
            Assert.Equal(0, (await Run(h, Sh("dd if=/dev/zero of=/root/test bs=1M count=7"))).ExitCode);
            Assert.NotEqual(0, (await Run(h, Sh("dd if=/dev/zero of=/root/more bs=1M count=10"))).ExitCode);
            Assert.Equal(10UL << 20, (await _client.CurrentLimitsAsync(h)).DiskBytes);
        }
        finally { await D.CliAsync("destroy", h); }
    }
    /// <summary>GATS's /dev/stdin, /dev/stdout and /dev/stderr as a user other than root: the process's pipes are its own.</summary>
    [InstallFact]
    public async Task A_user_other_than_root_can_use_dev_stdin_stdout_and_stderr()
    {
        var h = await Create("devstdio");
        try
        {
            var r = await D.CliAsync(["run", h, "--user", "vcap", "--", "sh", "-c", "cat /dev/stdin; echo -n potato >/dev/stdout; echo -n cake >/dev/stderr"], stdin: "in\n");
            Assert.Equal((0, "in\npotato", "cake"), (r.ExitCode, r.Stdout, r.Stderr));
        }
        finally { await D.CliAsync("destroy", h); }
    }
    /// <summary>GATS: container root may overwrite /etc/hosts and /etc/resolv.conf, another user may not. The attack:
    /// the files come from the host, so with a disk limit they live on the container's disk, and writing into them is
    /// held to that limit like any other write.</summary>
    [InstallFact]
    public async Task Container_root_may_rewrite_etc_hosts_and_resolv_conf_within_its_disk_limit_another_user_may_not()
    {
        var h = await Create("etchosts", "--disk", "16M");
        try
        {
            Assert.Equal(0, (await Run(h, Sh("echo NONSENSE > /etc/hosts && echo NONSENSE > /etc/resolv.conf"))).ExitCode);
            Assert.Equal("NONSENSE\n", (await Run(h, Sh("cat /etc/hosts"))).StdoutText);
            Assert.NotEqual(0, (await Run(h, Sh("echo x > /etc/hosts", "vcap"))).ExitCode);
            Assert.NotEqual(0, (await Run(h, Sh("dd if=/dev/zero of=/etc/hosts bs=1M count=64"))).ExitCode);
            Assert.True(new FileInfo(Path.Combine(D.StateDir, "depot", h, "hosts")).Exists is false, "the hosts file is in the depot, outside the disk");
        }
        finally { await D.CliAsync("destroy", h); }
    }
    [InstallFact]
    public async Task Streaming_in_as_an_unknown_user_is_an_error_streaming_in_naming_the_user()
    {
        var h = await Create("streamuser");
        try
        {
            var e = await Assert.ThrowsAsync<GardenClientException>(() => _client.StreamInAsync(h, "/tmp", new MemoryStream(new byte[1024]), "batman"));
            Assert.Equal("InvalidArgument", e.Code);
            Assert.StartsWith("error streaming in: user: ", e.Detail);
            Assert.Contains("batman", e.Detail);
            var o = await Assert.ThrowsAsync<GardenClientException>(() => _client.StreamOutAsync(h, "/tmp", new MemoryStream(), "batman"));
            Assert.StartsWith("error streaming out: user: ", o.Detail);
        }
        finally { await D.CliAsync("destroy", h); }
    }
}
