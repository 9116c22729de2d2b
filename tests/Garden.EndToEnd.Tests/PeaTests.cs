using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>Peas (a Run with its own image, `garden run --image DIR`): a process in a root of its own that shares its
/// container's other namespaces, driven through the CLI against a real gardend. The image is a copy of the default
/// rootfs with a marker file the container's own root does not have.</summary>
public sealed class PeaTests(PeaTests.Fixture fx) : IClassFixture<PeaTests.Fixture>
{
    public sealed class Fixture : IAsyncLifetime
    {
        public DaemonFixture Daemon { get; } = new();
        public string Image { get; private set; } = "";
        private string _imageDir = "";

        public async Task InitializeAsync()
        {
            await Daemon.InitializeAsync();
            if (Gate.Unmet(Needs.Root | Needs.Install) is not null) return; // its tests are skipped
            _imageDir = TestPaths.NewTempDir("pea-image");
            Image = Path.Combine(_imageDir, "rootfs");
            var cp = await Command.RunAsync(Command.Resolve("cp"), ["-a", TestPaths.DefaultRootfs, Image]);
            if (!cp.Succeeded) throw new InvalidOperationException($"cp: {cp.Stderr}");
            File.WriteAllText(Path.Combine(Image, "pea-marker"), "from the pea's image\n");
            // the seccomp probe, in the image (a pea has its own root)
            File.Copy(AttackTool.Path("syscalls"), Path.Combine(Image, "syscalls-probe"));
        }

        public async Task DisposeAsync()
        {
            await Daemon.DisposeAsync();
            if (_imageDir.Length > 0) Directory.Delete(_imageDir, recursive: true);
        }
    }

    private Gardend D => fx.Daemon.Daemon;
    private string Image => fx.Image;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<string> Create(params string[] flags)
    {
        var h = Unique("pea");
        var r = await D.CliAsync(["create", "--handle", h, .. flags]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    /// <summary>What a pea leaves on the host: its runc container, its root's mount, its files, its cgroup.</summary>
    private List<string> PeaLeftovers(string handle)
    {
        var found = new List<string>();
        if (Directory.Exists("/run/runc"))
            found.AddRange(Directory.GetDirectories("/run/runc").Select(Path.GetFileName).OfType<string>()
                .Where(n => n.StartsWith(handle + "+pea+", StringComparison.Ordinal)).Select(n => $"runc state {n}"));
        found.AddRange(File.ReadLines("/proc/self/mountinfo").Where(l => l.Contains("/.peas/", StringComparison.Ordinal)
            && l.Contains($"/{handle}/", StringComparison.Ordinal)).Select(l => $"mount: {l}"));
        var peas = Path.Combine(D.StateDir, "depot", handle, "peas");
        if (Directory.Exists(peas)) found.AddRange(Directory.GetFileSystemEntries(peas).Select(e => $"pea files {e}"));
        if (Directory.Exists(Path.Combine(D.MountDir, ".peas", handle))) found.Add("pea mount dir");
        found.AddRange(HostCgroups.Existing(D.CgroupParent, handle).SelectMany(dir => Directory.Exists(dir)
            ? Directory.GetDirectories(dir).Where(c => Path.GetFileName(c).Contains("+pea+", StringComparison.Ordinal)) : [])
            .Select(c => $"cgroup {c}"));
        return found;
    }

    private async Task AssertNoPeaLeftovers(string handle)
    {
        // a pea is released once its exit was seen (at most a second for a detached one)
        for (var i = 0; i < 50 && PeaLeftovers(handle).Count > 0; i++) await Task.Delay(200);
        Assert.Empty(PeaLeftovers(handle));
    }

    private async Task Destroy(string handle)
    {
        Assert.Equal(0, (await D.CliAsync("destroy", handle)).ExitCode);
        Assert.Empty(PeaLeftovers(handle));
        Assert.Empty(Host.Leftovers(D, handle));
    }

    [InstallFact]
    public async Task A_pea_runs_in_its_own_root_with_its_output_streams_and_exit_code()
    {
        var h = await Create();
        try
        {
            var own = await D.CliAsync("run", h, "--image", Image, "--", "sh", "-c", "cat /pea-marker; echo err >&2; exit 7");
            Assert.Equal(7, own.ExitCode);
            Assert.Equal("from the pea's image\n", own.Stdout);
            Assert.Equal("err\n", own.Stderr);
            // the container's own root has no marker: the pea's root is its own
            var container = await D.CliAsync("run", h, "--", "cat", "/pea-marker");
            Assert.NotEqual(0, container.ExitCode);
            // a pea starts in / (Garden's), its stdin reaches it
            var stdin = await D.CliAsync(["run", h, "--image", Image, "--", "sh", "-c", "pwd; cat"], stdin: "to the pea\n");
            Assert.Equal("/\nto the pea\n", stdin.Stdout);
            await AssertNoPeaLeftovers(h);
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task A_pea_shares_every_namespace_of_its_container_but_the_mount_one_and_its_hosts_file()
    {
        var h = await Create();
        try
        {
            async Task<string> Ns(string ns, bool pea) =>
                (await D.CliAsync(pea ? ["run", h, "--image", Image, "--", "readlink", $"/proc/self/ns/{ns}"] : ["run", h, "--", "readlink", $"/proc/self/ns/{ns}"])).Stdout;
            foreach (var ns in new[] { "net", "pid", "user", "ipc", "uts" })
                Assert.Equal(await Ns(ns, pea: false), await Ns(ns, pea: true));
            Assert.NotEqual(await Ns("mnt", pea: false), await Ns("mnt", pea: true));
            // the same network: the pea sees the container's address
            var addr = (await D.CliAsync("run", h, "--", "ip", "-4", "-o", "addr", "show", "eth0")).Stdout;
            Assert.Contains("10.252.", addr);
            Assert.Equal(addr, (await D.CliAsync("run", h, "--image", Image, "--", "ip", "-4", "-o", "addr", "show", "eth0")).Stdout);
            // the container's /etc/hosts, the same file: what the pea writes the container reads
            Assert.Equal(0, (await D.CliAsync("run", h, "--image", Image, "--", "sh", "-c", "echo 10.9.9.9 from-pea >> /etc/hosts")).ExitCode);
            Assert.Contains("from-pea", (await D.CliAsync("run", h, "--", "cat", "/etc/hosts")).Stdout);
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task A_detached_pea_is_released_when_it_exits_and_signals_and_attach_reach_it()
    {
        var h = await Create();
        try
        {
            var run = await D.CliAsync("run", h, "--detach", "--id", "trapper", "--image", Image, "--",
                "sh", "-c", "trap 'echo termed; exit 42' TERM; echo ready; while true; do sleep 0.1; done");
            Assert.Equal(0, run.ExitCode);
            Assert.NotEmpty(PeaLeftovers(h)); // it runs
            Assert.Contains("trapper", (await D.CliAsync("--json", "info", h)).Stdout); // one of its container's processes
            var attach = D.CliAsync("attach", h, "trapper");
            await Task.Delay(1000);
            Assert.Equal(0, (await D.CliAsync("signal", h, "trapper", "TERM")).ExitCode);
            var done = await attach;
            Assert.Equal(42, done.ExitCode);
            Assert.Equal("ready\ntermed\n", done.Stdout);
            await AssertNoPeaLeftovers(h);
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task Destroying_the_container_kills_its_peas_with_137_and_leaves_nothing()
    {
        var h = await Create("--memory", "64M");
        var run = await D.CliAsync("run", h, "--detach", "--id", "sleeper", "--image", Image, "--", "sleep", "1000");
        Assert.Equal(0, run.ExitCode);
        await D.CliAsync("run", h, "--detach", "--id", "own", "--image", Image, "--pea-memory", "32M", "--", "sleep", "1000");
        var attach = D.CliAsync("attach", h, "sleeper");
        await Task.Delay(500);
        await Destroy(h);
        Assert.Equal(137, (await attach).ExitCode);
    }

    [InstallFact]
    public async Task A_pea_shares_its_containers_memory_limit_unless_it_has_its_own()
    {
        var h = await Create("--memory", "64M");
        try
        {
            // shared: the pea's process is in the container's process cgroup
            var shared = await D.CliAsync("run", h, "--image", Image, "--", "sh", "-c", "cat /proc/self/cgroup | grep memory");
            Assert.Contains("/work", shared.Stdout);
            // its own: a cgroup of its own with that limit, which it sees at /sys/fs/cgroup
            var own = await D.CliAsync("run", h, "--image", Image, "--pea-memory", "32M", "--", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes");
            Assert.Equal("33554432\n", own.Stdout);
            var over = await D.CliAsync("run", h, "--image", Image, "--pea-memory", "32M", "--", "dd", "if=/dev/zero", "of=/dev/shm/big", "bs=1M", "count=40");
            Assert.NotEqual(0, over.ExitCode);
            // outside the container's pids limit, a cgroup of its own gets the daemon's default one (1024)
            var pids = await D.CliAsync("run", h, "--image", Image, "--pea-memory", "512M", "--", "cat", "/sys/fs/cgroup/pids/pids.max");
            Assert.Equal("1024\n", pids.Stdout);
            await AssertNoPeaLeftovers(h);
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task Attack_a_pea_cannot_fill_the_host_past_its_containers_disk_limit()
    {
        var h = await Create("--disk", "64M");
        try
        {
            var fill = await D.CliAsync("run", h, "--image", Image, "--", "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=100");
            Assert.NotEqual(0, fill.ExitCode);
            Assert.Contains("No space left on device", fill.Stderr);
            await AssertNoPeaLeftovers(h);
            Assert.False(Directory.Exists(Path.Combine(D.StateDir, "depot", h, "disk", "peas", "x")));
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task A_bad_image_is_refused_naming_it_and_nothing_is_left()
    {
        var h = await Create();
        try
        {
            var missing = await D.CliAsync("run", h, "--image", "/no/such/image", "--", "true");
            Assert.Equal(125, missing.ExitCode);
            Assert.Contains("/no/such/image", missing.Stderr);
            Assert.Contains("image", missing.Stderr);
            var relative = await D.CliAsync("run", h, "--image", "relative/dir", "--", "true");
            Assert.Equal(125, relative.ExitCode);
            Assert.Contains("relative/dir", relative.Stderr);
            var notRootfs = await D.CliAsync("run", h, "--image", fx.Daemon.Daemon.Dir + "/../", "--", "true");
            Assert.Equal(125, notRootfs.ExitCode);
            var noExe = await D.CliAsync("run", h, "--image", Image, "--", "does-not-exist");
            Assert.NotEqual(0, noExe.ExitCode);
            Assert.Contains("does-not-exist", noExe.Stderr);
            await AssertNoPeaLeftovers(h);
            // the container is still fine
            Assert.Equal("ok\n", (await D.CliAsync("run", h, "--", "echo", "ok")).Stdout);
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task After_kill_9_a_running_pea_is_still_there_and_one_that_exited_meanwhile_is_released()
    {
        await using var d = new Gardend();
        await d.StartAsync();
        var h = Unique("pea-restart");
        Assert.Equal(0, (await d.CliAsync("create", "--handle", h)).ExitCode);
        try
        {
            await d.CliAsync("run", h, "--detach", "--id", "long", "--image", Image, "--", "sh", "-c", "echo before; sleep 1000");
            await d.CliAsync("run", h, "--detach", "--id", "short", "--image", Image, "--", "sh", "-c", "sleep 1; exit 3");
            await Task.Delay(500);
            await d.StopAsync(kill: true);
            await Task.Delay(2000); // "short" exits while no gardend runs
            await d.StartAsync();

            var attach = d.CliAsync("attach", h, "long");
            await Task.Delay(1000);
            Assert.Equal(0, (await d.CliAsync("signal", h, "long", "KILL")).ExitCode);
            var done = await attach;
            Assert.Equal(137, done.ExitCode);
            Assert.Equal("before\n", done.Stdout);
            // both are released: "long" once its exit was seen, "short" when the restarted gardend found it exited
            for (var i = 0; i < 50 && Directory.Exists(Path.Combine(d.StateDir, "depot", h, "peas")); i++) await Task.Delay(200);
            Assert.False(Directory.Exists(Path.Combine(d.StateDir, "depot", h, "peas")), "the peas' files are left");
            Assert.DoesNotContain(File.ReadLines("/proc/self/mountinfo"), l => l.Contains($"/.peas/{h}/", StringComparison.Ordinal));
        }
        finally
        {
            await d.CliAsync("destroy", h);
            Assert.Empty(Host.Leftovers(d, h));
        }
    }

    // ---- attacks: a pea is as contained as its container ----

    [InstallFact]
    public async Task Attack_an_image_that_holds_or_is_inside_the_daemons_state_is_refused()
    {
        var h = await Create();
        var link = Path.Combine(TestPaths.NewTempDir("pea-link"), "image");
        try
        {
            // "/" would give the pea the host's root, gardend's journal included, read through the idmapped lower layer
            var root = await D.CliAsync("run", h, "--image", "/", "--", "cat", D.StateDir + "/journal.db");
            Assert.Equal(125, root.ExitCode);
            Assert.Contains("only gardend may use", root.Stderr);
            // a symlink to the state dir is resolved first
            File.CreateSymbolicLink(link, D.StateDir);
            var viaLink = await D.CliAsync("run", h, "--image", link, "--", "ls");
            Assert.Equal(125, viaLink.ExitCode);
            Assert.Contains(D.StateDir, viaLink.Stderr);
            Assert.Empty(PeaLeftovers(h));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(link)!, recursive: true);
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task Attack_a_pea_of_an_unprivileged_container_has_its_user_namespace_seccomp_and_capabilities()
    {
        var h = await Create();
        try
        {
            async Task<string> Both(params string[] cmd)
            {
                var container = (await D.CliAsync(["run", h, "--", .. cmd])).Stdout;
                var pea = (await D.CliAsync(["run", h, "--image", Image, "--", .. cmd])).Stdout;
                Assert.Equal(container, pea);
                return pea;
            }
            Assert.Contains("4294967294", await Both("cat", "/proc/self/uid_map"));   // container root is not host root
            Assert.Equal("Seccomp:\t2\n", await Both("grep", "^Seccomp:", "/proc/self/status"));
            Assert.StartsWith("CapEff:", await Both("grep", "^CapEff:", "/proc/self/status"));
            Assert.Equal("NoNewPrivs:\t1\n", await Both("grep", "^NoNewPrivs:", "/proc/self/status"));
            // its agent runs from a file nothing in the container can read (non-dumpable from its first instruction, so no
            // process of the container could ptrace it while it started), and its process stands where a container's do
            // under the host's OOM killer (the agent raises it after the execve: it cannot write its own before)
            var read = await D.CliAsync("run", h, "--image", Image, "--", "sh", "-c", "head -c 4 /.garden/agent >/dev/null; echo rc=$?");
            Assert.Contains("Permission denied", read.Stderr + read.Stdout);
            Assert.Contains("rc=1", read.Stdout);
            // (a process reads its own score at once: the agent writes it right after the execve, so it may be early)
            const string score = "for i in $(seq 100); do read v < /proc/self/oom_score_adj; [ \"$v\" = 500 ] && break; sleep 0.02; done; echo $v";
            Assert.Equal("500\n", await Both("sh", "-c", score));
            // runc's filter, and over it the agent's socketcall guard: no nested user namespace, no AF_VSOCK socket either
            // way (the i386 multiplexer is what runc's compile of the profile cannot refuse)
            var probe = await D.CliAsync("run", h, "--image", Image, "--", "/syscalls-probe");
            Assert.True(probe.ExitCode == 1, probe.ToString());
            foreach (var line in (string[])["unshare(CLONE_NEWUSER): EPERM", "socket(AF_VSOCK): EPERM",
                         .. I386Entry.Lines("int80 unshare(CLONE_NEWUSER): EPERM", "int80 socketcall(SYS_SOCKET, AF_VSOCK): EPERM"),
                         "socket(AF_VSOCK | 1<<32): EPERM", "contained"])
                Assert.True(probe.Stdout.Contains(line + "\n"), $"{line} not in:\n{probe.Stdout}");
            // it may not mount, nor make namespaces of its own
            Assert.NotEqual(0, (await D.CliAsync("run", h, "--image", Image, "--", "mount", "-t", "tmpfs", "none", "/mnt")).ExitCode);
            Assert.NotEqual(0, (await D.CliAsync("run", h, "--image", Image, "--", "unshare", "-m", "true")).ExitCode);
            // what it writes stays in its own layer, never in the image on the host
            Assert.Equal(0, (await D.CliAsync("run", h, "--image", Image, "--", "sh", "-c", "echo x > /written-by-pea; rm /pea-marker")).ExitCode);
            Assert.False(File.Exists(Path.Combine(Image, "written-by-pea")));
            Assert.True(File.Exists(Path.Combine(Image, "pea-marker")));
            await AssertNoPeaLeftovers(h);
        }
        finally
        {
            await Destroy(h);
        }
    }

    [InstallFact]
    public async Task A_pea_of_a_privileged_container_is_privileged_like_it()
    {
        var h = await Create("--privileged");
        try
        {
            var map = await D.CliAsync("run", h, "--image", Image, "--", "cat", "/proc/self/uid_map");
            Assert.Matches(@"\A\s*0\s+0\s+4294967295\s*\z", map.Stdout);
        }
        finally
        {
            await Destroy(h);
        }
    }
}
