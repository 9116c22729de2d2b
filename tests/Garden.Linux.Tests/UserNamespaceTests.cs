using Garden.Linux.Runtime;
using Garden.Linux.UserNamespaces;
using Garden.Protocol.Agent;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>An unprivileged container as the kernel sees it: its own user namespace (Garden's mapping), container root
/// an unprivileged host uid that still sees its root filesystem as its own, Garden's capabilities, and a privileged
/// container for contrast.</summary>
public sealed class UserNamespaceTests(RealContainerFixture fixture) : IClassFixture<RealContainerFixture>
{
    private RealContainer C => fixture.Container;

    private static string Status(string status, string field) =>
        status.Split('\n').Single(l => l.StartsWith(field + ":", StringComparison.Ordinal))[(field.Length + 1)..].Trim();

    [InstallFact]
    public async Task The_uid_and_gid_maps_inside_are_gardens()
    {
        var (output, exit) = await C.Agent.ShAsync("cat /proc/self/uid_map; echo --; cat /proc/self/gid_map");
        Assert.Equal(0, exit);
        string[] Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToArray();
        var parts = output.Split("--");
        Assert.Equal(["0 4294967294 1", "1 1 4294967293"], Lines(parts[0]));
        Assert.Equal(["0 4294967294 1", "1 1 4294967293"], Lines(parts[1]));
    }

    [InstallFact]
    public async Task Container_root_is_an_unprivileged_host_uid_that_sees_its_root_as_its_own()
    {
        // the agent (PID 1) as the host sees it
        var status = File.ReadAllText($"/proc/{C.InitPid}/status");
        Assert.Equal("4294967294", Status(status, "Uid").Split('\t')[0]);
        Assert.NotEqual(new FileInfo("/proc/self/ns/user").LinkTarget, new FileInfo($"/proc/{C.InitPid}/ns/user").LinkTarget);
        // inside: root, and / and /bin are root's (the idmapped base), so root may write anywhere as before
        var (output, exit) = await C.Agent.ShAsync("id -u; stat -c '%u:%g' / /bin /bin/busybox /root; touch /root/potato && echo ok");
        Assert.Equal(0, exit);
        Assert.Equal(["0", "0:0", "0:0", "0:0", "0:0", "ok"], output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [InstallFact]
    public async Task Files_container_root_writes_belong_to_its_host_uid()
    {
        var (_, exit) = await C.Agent.ShAsync("echo x > /written-by-root; mkdir -p /etc/copied-up && echo y >> /etc/passwd");
        Assert.Equal(0, exit);
        var upper = Path.Combine(C.Depot, "upper");
        foreach (var f in new[] { "written-by-root", "etc/copied-up", "etc/passwd" })
            Assert.Equal("4294967294:4294967294", await Owner(Path.Combine(upper, f)));
        // a copied-up file keeps its own owner too (vcap's home, 1000, is the host's 1000 in Garden's mapping)
        var (_, vcap) = await C.Agent.ShAsync("touch /home/vcap/mine", user: "vcap");
        Assert.Equal(0, vcap);
        Assert.Equal("1000:1000", await Owner(Path.Combine(upper, "home/vcap/mine")));
    }

    [InstallFact]
    public async Task Root_has_gardens_capabilities_and_a_non_root_user_none()
    {
        var (root, _) = await C.Agent.ShAsync("cat /proc/self/status");
        Assert.Equal("00000000a80425fb", Status(root, "CapEff"));
        Assert.Equal("00000000a80425fb", Status(root, "CapPrm"));
        Assert.Equal("00000000a80425fb", Status(root, "CapBnd"));
        Assert.Equal("0000000000000000", Status(root, "CapAmb"));
        var (vcap, _) = await C.Agent.ShAsync("cat /proc/self/status", user: "1000:1000");
        Assert.Equal("0000000000000000", Status(vcap, "CapEff"));
        Assert.Equal("0000000000000000", Status(vcap, "CapPrm"));
        Assert.Equal("0000000000000000", Status(vcap, "CapAmb"));
        Assert.Equal("00000000a80425fb", Status(vcap, "CapBnd"));
    }

    [InstallFact]
    public async Task Container_root_cannot_touch_what_the_host_root_owns()
    {
        // sysrq-trigger is read-only; /proc/sys too; and a host-root-owned file bind-mounted in is not root's to change
        var (output, _) = await C.Agent.ShAsync("echo h 2>/dev/null > /proc/sysrq-trigger && echo DID-SYSRQ; " +
                                                 "echo 1 2>/dev/null > /proc/sys/kernel/panic && echo DID-SYSCTL; " +
                                                 "chown 0 /.garden/agent 2>/dev/null && echo DID-CHOWN; stat -c '%u' /.garden/agent; " +
                                                 "mount -t tmpfs x /mnt 2>/dev/null && echo DID-MOUNT; true");
        Assert.DoesNotContain("DID-", output);
        Assert.Contains("65534", output); // host root is no one in the container's namespace: the overflow uid
    }

    [InstallFact]
    public async Task The_agent_moves_its_processes_into_the_work_cgroup_delegated_to_container_root()
    {
        var req = new SpawnRequest { Id = "cg-" + Guid.NewGuid().ToString("N")[..8], Path = "/bin/sleep" };
        req.Args.Add("30");
        var pid = (await C.Agent.SpawnAsync(req, default)).Pid;
        try
        {
            // pid is the agent's view; find the host pid by the container's cgroup
            var dir = Directory.GetDirectories(HostCgroups.Hierarchy("pids")).Select(d => Path.Combine(d, C.Handle, "work")).Single(Directory.Exists);
            var procs = File.ReadAllLines(Path.Combine(dir, "cgroup.procs"));
            Assert.Contains(procs, p => File.ReadAllText($"/proc/{p}/cmdline").StartsWith("/bin/sleep"));
            Assert.Equal("4294967294", await Stat("%u", Path.Combine(dir, "cgroup.procs")));
            // the limits stay the host's: container root may move processes, not lift its pids limit
            Assert.Equal("0", await Stat("%u", Path.Combine(dir, "pids.max")));
            Assert.Equal("0", await Stat("%u", dir));
        }
        finally
        {
            await C.Agent.SignalAsync(req.Id, 9, default);
        }
        Assert.True(pid > 1);
    }

    [InstallFact]
    public async Task A_tty_works_in_the_user_namespace()
    {
        var req = new SpawnRequest { Id = "tty-" + Guid.NewGuid().ToString("N")[..8], Path = "/bin/sh", Tty = true, Rows = 24, Cols = 80 };
        req.Args.AddRange(["-c", "tty; stat -c '%g' $(tty); stty size"]);
        await using var stream = await C.Agent.SpawnAttachedAsync(req, default);
        var output = new System.Text.StringBuilder();
        while (await stream.ReadAsync(default) is { } evt)
        {
            if (evt.KindCase == AgentEvent.KindOneofCase.Output) output.Append(evt.Output.Data.ToStringUtf8());
            if (evt.KindCase == AgentEvent.KindOneofCase.Exited)
            {
                Assert.Equal(0, evt.Exited.ExitCode);
                break;
            }
        }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith("/dev/pts/", lines[0]);
        Assert.Equal("5", lines[1]); // devpts gid=5 is mapped
        Assert.Equal("24 80", lines[2]);
    }

    private static async Task<string> Stat(string format, string path) =>
        (await Garden.Linux.Process.Command.RunAsync("/usr/bin/stat", ["-c", format, path])).Stdout.Trim();

    private static Task<string> Owner(string path) => Stat("%u:%g", path);
}

/// <summary>Containers started one by one: a per-container range, and privileged ones.</summary>
public sealed class UserNamespaceVariantTests
{
    [InstallFact]
    public async Task A_per_container_mapping_maps_65536_ids_from_its_own_host_range()
    {
        await using var c = await RealContainer.StartAsync("perct", mapping: IdMapping.PerContainer(0x7ffe_0000));
        var (output, exit) = await c.Agent.ShAsync("cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u' /bin; echo x > /f; stat -c '%u' /home/vcap");
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToArray();
        Assert.Equal([$"0 {0x7ffe_0000u} 65536", $"0 {0x7ffe_0000u} 65536", "0", "1000"], lines);
        Assert.Equal($"{0x7ffe_0000u}", (await Garden.Linux.Process.Command.RunAsync("/usr/bin/stat", ["-c", "%u", Path.Combine(c.Depot, "upper", "f")])).Stdout.Trim());
        Assert.Equal($"{0x7ffe_0000u}", File.ReadAllLines($"/proc/{c.InitPid}/status").Single(l => l.StartsWith("Uid:")).Split('\t')[1]);
    }

    [InstallFact]
    public async Task A_privileged_container_is_host_root_with_every_capability_gardend_holds()
    {
        await using var c = await RealContainer.StartAsync("priv", privileged: true);
        var (output, exit) = await c.Agent.ShAsync("cat /proc/self/uid_map; grep -E '^Cap(Eff|Bnd)' /proc/self/status");
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => string.Join(' ', l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries))).ToArray();
        Assert.Equal("0 0 4294967295", lines[0]); // the host's own namespace: no user namespace
        var mine = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("CapBnd:"))[7..].Trim();
        Assert.Equal($"CapEff: {mine}", lines[1]);
        Assert.Equal($"CapBnd: {mine}", lines[2]);
        Assert.Equal(File.ReadAllText("/proc/self/uid_map"), File.ReadAllText($"/proc/{c.InitPid}/uid_map"));
    }

    [InstallFact]
    public async Task Each_container_gets_a_session_keyring_of_its_own()
    {
        // privileged: the seccomp profile of unprivileged containers refuses keyctl altogether
        await using var c = await RealContainer.StartAsync("keys", privileged: true);
        File.Copy(AttackTool.Path("session-keyring"), Path.Combine(c.RootfsPath, "session-keyring"));
        var (output, exit) = await c.Agent.ShAsync("/session-keyring");
        Assert.True(exit == 0, output);
        // runc names the session keyring it makes after the container (with --no-new-keyring it would be the caller's)
        Assert.EndsWith($";_ses.{c.Handle}", output.Trim());
    }
}
