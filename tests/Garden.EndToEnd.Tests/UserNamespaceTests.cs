using System.Formats.Tar;
using System.Text.Json;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>A plain `garden create` is unprivileged: its own user namespace with Garden's mapping, container root an
/// unprivileged host uid for everything it writes on the host (the overlay's upper layer, a disk-limit file system,
/// StreamIn), Garden's capabilities; `--privileged` is host root with every capability gardend holds.</summary>
public sealed class UserNamespaceTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<string> Create(string prefix, params string[] flags)
    {
        var h = Unique(prefix);
        var r = await D.CliAsync(["create", "--handle", h, .. flags]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    private async Task<string> Sh(string handle, string script, params string[] flags)
    {
        var r = await D.CliAsync(["run", handle, .. flags, "--", "sh", "-c", script]);
        Assert.True(r.ExitCode == 0, $"{script}: {r}");
        return r.Stdout;
    }

    internal static string[] Lines(string s) =>
        s.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => string.Join(' ', l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries))).ToArray();

    internal static async Task<string> Owner(string path) => (await Command.RunAsync("/usr/bin/stat", ["-c", "%u:%g", path])).Stdout.Trim();

    [InstallFact]
    public async Task A_plain_create_is_unprivileged_with_gardens_mapping_shown_in_info()
    {
        var h = await Create("userns");
        try
        {
            Assert.Equal(["0 4294967294 1", "1 1 4294967293", "0 4294967294 1", "1 1 4294967293"],
                Lines(await Sh(h, "cat /proc/self/uid_map /proc/self/gid_map")));
            var text = (await D.CliAsync("info", h)).Stdout;
            Assert.Contains("privileged: no", text);
            Assert.Contains("user ns:    uid/gid 0->4294967294 (1), 1->1 (4294967293)", text);
            var info = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement;
            var uids = info.GetProperty("userNamespace").GetProperty("uidMap").EnumerateArray().ToList();
            Assert.Equal(4294967294u, uids[0].GetProperty("hostId").GetUInt32());
            // the root sits in this daemon's mount dir, in a dir only container root may enter
            var path = info.GetProperty("containerPath").GetString()!;
            Assert.Equal(Path.Combine(D.MountDir, h, "rootfs"), path);
            Assert.Equal("4294967294:4294967294", await Owner(Path.GetDirectoryName(path)!));
            Assert.Equal("700", (await Command.RunAsync("/usr/bin/stat", ["-c", "%a", Path.GetDirectoryName(path)!])).Stdout.Trim());
            // a user of the host cannot reach into it (to run what container root planted there, say)
            await Sh(h, "cp /bin/busybox /planted && chmod 4755 /planted");
            var nobody = await Command.RunAsync("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
                "/bin/sh", "-c", $"ls {path}/ || {path}/planted id -u || echo refused"]);
            Assert.Contains("Permission denied", nobody.Stderr);
            Assert.Contains("refused", nobody.Stdout);
            var options = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).Single(f => f[4] == path)[5].Split(',');
            Assert.Contains("nosuid", options);
            Assert.Contains("nodev", options);
            // root's capabilities are Garden's, a user's none
            Assert.Contains("CapEff: 00000000a80425fb", Lines(await Sh(h, "grep Cap /proc/self/status")));
            Assert.Contains("CapEff: 0000000000000000", Lines(await Sh(h, "grep Cap /proc/self/status", "--user", "vcap")));
            Assert.Contains("CapBnd: 00000000a80425fb", Lines(await Sh(h, "grep Cap /proc/self/status", "--user", "vcap")));
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
        Assert.Empty(Host.Leftovers(D, h));
        Assert.False(Directory.Exists(Path.Combine(D.MountDir, h)));
    }

    [InstallFact]
    public async Task What_container_root_writes_belongs_on_the_host_to_its_unprivileged_uid_disk_limit_and_stream_in_included()
    {
        var plain = await Create("owner");
        var disk = await Create("ownerd", "--disk", "64M");
        try
        {
            foreach (var h in new[] { plain, disk })
            {
                await Sh(h, "echo x > /by-root; mkdir /home/vcap/d; chown vcap:vcap /home/vcap/d");
                await Sh(h, "echo y > /home/vcap/d/by-vcap", "--user", "vcap");
            }
            var plainUpper = Path.Combine(D.StateDir, "depot", plain, "upper");
            var diskUpper = Path.Combine(D.StateDir, "depot", disk, "disk", "upper");
            foreach (var upper in new[] { plainUpper, diskUpper })
            {
                Assert.Equal("4294967294:4294967294", await Owner(Path.Combine(upper, "by-root")));
                Assert.Equal("1000:1000", await Owner(Path.Combine(upper, "home/vcap/d/by-vcap")));
            }
            // the disk-limit file system is mounted nosuid,nodev too
            var diskMount = File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).Single(f => f[4] == Path.Combine(D.StateDir, "depot", disk, "disk"));
            Assert.Contains("nosuid", diskMount[5].Split(','));
            Assert.Contains("nodev", diskMount[5].Split(','));

            // StreamIn as root keeps the archive's owners, as the container's ids
            var tar = new MemoryStream();
            using (var w = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
            {
                w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "rootfile") { DataStream = new MemoryStream("r"u8.ToArray()), Uid = 0, Gid = 0 });
                w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "vcapfile") { DataStream = new MemoryStream("v"u8.ToArray()), Uid = 1000, Gid = 1000 });
            }
            tar.Position = 0;
            using (var p = D.StartCli("stream-in", plain, "/streamed"))
            {
                await tar.CopyToAsync(p.StandardInput.BaseStream);
                p.StandardInput.Close();
                await p.WaitForExitAsync();
                Assert.True(p.ExitCode == 0, await p.StandardError.ReadToEndAsync());
            }
            Assert.Equal(["0:0", "1000:1000"], Lines(await Sh(plain, "stat -c '%u:%g' /streamed/rootfile /streamed/vcapfile")));
            Assert.Equal("4294967294:4294967294", await Owner(Path.Combine(plainUpper, "streamed/rootfile")));
            Assert.Equal("1000:1000", await Owner(Path.Combine(plainUpper, "streamed/vcapfile")));
        }
        finally
        {
            await D.CliAsync("destroy", plain, disk);
        }
    }

    [InstallFact]
    public async Task A_privileged_container_is_host_root_with_every_capability_gardend_holds()
    {
        // Before: runc refused the fixed list of every capability (with CAP_SYS_RESOURCE, which this host's bounding set lacks).
        var h = await Create("priv", "--privileged");
        try
        {
            var lines = Lines(await Sh(h, "cat /proc/self/uid_map; grep -E '^Cap(Eff|Bnd)' /proc/self/status"));
            Assert.Equal("0 0 4294967295", lines[0]);
            var gardend = File.ReadLines($"/proc/{D.Pid}/status").Single(l => l.StartsWith("CapBnd:"))[7..].Trim();
            Assert.Equal([$"CapEff: {gardend}", $"CapBnd: {gardend}"], lines[1..]);
            var text = (await D.CliAsync("info", h)).Stdout;
            Assert.Contains("privileged: yes", text);
            Assert.Contains("user ns:    none (privileged: container root is host root)", text);
            Assert.False(JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement.TryGetProperty("userNamespace", out _));
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task A_bind_mount_source_in_a_directory_container_root_cannot_enter_is_mounted_all_the_same()
    {
        // runc opens bind-mount sources as host root before it joins the user namespace (as it does for the agent,
        // /etc/hosts and resolv.conf in the 0700 state dir): only the file's own mode counts inside
        var secret = TestPaths.NewTempDir("bind-0700"); // 0700, host root's
        var file = Path.Combine(secret, "shared.txt");
        File.WriteAllText(file, "readable\n");
        File.SetUnixFileMode(file, (UnixFileMode)0b110_100_100);
        var h = Unique("bind7");
        try
        {
            var create = await D.CliAsync("create", "--handle", h, "--bind-mount", $"{file}:/mnt/shared.txt");
            Assert.True(create.ExitCode == 0, create.ToString());
            Assert.Equal("readable\n", await Sh(h, "cat /mnt/shared.txt"));
            Assert.Equal("65534:65534", (await Sh(h, "stat -c '%u:%g' /mnt/shared.txt")).Trim()); // host root is no one inside
        }
        finally
        {
            await D.CliAsync("destroy", h);
            Directory.Delete(secret, recursive: true);
        }
    }

    [InstallFact]
    public async Task Networking_hosts_resolv_and_a_tty_work_unprivileged()
    {
        var h = await Create("netns");
        try
        {
            // sysfs mounts (the netns belongs to the container's user namespace), eth0 is there, the name files are root's
            var lines = Lines(await Sh(h, "ls /sys/class/net | sort; stat -c '%u %a' /etc/hosts /etc/resolv.conf; grep -c $(hostname) /etc/hosts"));
            Assert.Equal(["eth0", "lo", "0 644", "0 644", "1"], lines);
            var tty = await D.CliAsync("run", h, "--tty", "--", "sh", "-c", "tty; stat -c %g $(tty)");
            Assert.True(tty.ExitCode == 0, tty.ToString());
            Assert.Contains("/dev/pts/", tty.Stdout);
            // the container runs in the namespace gardend bound for it (sysfs mounted over it, so its user namespace owns it)
            var info = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement;
            var ip = info.GetProperty("containerIp").GetString()!;
            var netns = Path.Combine("/run/netns", D.NetworkPrefix + string.Concat(ip.Split('.').Select(b => int.Parse(b).ToString("x2"))));
            var inode = (await Command.RunAsync("/usr/bin/stat", ["-L", "-c", "%i", netns])).Stdout.Trim();
            Assert.Equal($"net:[{inode}]", (await Sh(h, "readlink /proc/self/ns/net")).Trim());
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
        Assert.Empty(Host.Leftovers(D, h));
    }
}

/// <summary>`garden.user-namespace.mapping = per-container`: each container its own 65536 host ids from a pool the host
/// journals — never two containers on one range, across create, destroy and a kill -9 of gardend.</summary>
public sealed class PerContainerUserNamespaceTests
{
    private const uint First = 0x7e00_0000;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static async Task<uint> RangeOf(Gardend d, string h)
    {
        var r = await d.CliAsync("run", h, "--", "cat", "/proc/self/uid_map");
        Assert.True(r.ExitCode == 0, r.ToString());
        var f = UserNamespaceTests.Lines(r.Stdout).Single().Split(' ');
        Assert.Equal(("0", "65536"), (f[0], f[2]));
        var hostStart = uint.Parse(f[1]);
        // what the kernel says is what Info says
        var info = JsonDocument.Parse((await d.CliAsync("--json", "info", h)).Stdout).RootElement;
        Assert.Equal(hostStart, info.GetProperty("userNamespace").GetProperty("uidMap")[0].GetProperty("hostId").GetUInt32());
        return hostStart;
    }

    [InstallFact]
    public async Task Ranges_never_overlap_across_create_destroy_and_restart_and_an_empty_pool_is_a_clear_error()
    {
        await using var d = new Gardend($$"""garden.user-namespace { mapping = per-container, per-container { first-host-id = {{First}}, ranges = 3 } }""");
        await d.StartAsync();
        var handles = new List<string>();
        async Task<string> Create()
        {
            var h = Unique("pc");
            var r = await d.CliAsync("create", "--handle", h);
            Assert.True(r.ExitCode == 0, r.ToString());
            handles.Add(h);
            return h;
        }
        try
        {
            var a = await Create();
            var b = await Create();
            Assert.Equal(First, await RangeOf(d, a));
            Assert.Equal(First + 65536, await RangeOf(d, b));
            // container root writes as its own host uid
            await d.CliAsync("run", a, "--", "sh", "-c", "echo x > /mine");
            Assert.Equal($"{First}:{First}", await UserNamespaceTests.Owner(Path.Combine(d.StateDir, "depot", a, "upper", "mine")));

            Assert.Equal(0, (await d.CliAsync("destroy", a)).ExitCode);
            handles.Remove(a);
            await Host.ReleaseFinished(d, a); // a Destroy answers before its release ends, which returns the range
            var c = await Create();
            Assert.Equal(First, await RangeOf(d, c)); // a's range came back to the pool

            await d.StopAsync(kill: true);
            await d.StartAsync();
            Assert.Equal(First + 65536, await RangeOf(d, b));
            Assert.Equal(First, await RangeOf(d, c));
            var e = await Create();
            Assert.Equal(First + 2 * 65536, await RangeOf(d, e)); // the journal kept b's and c's: neither is handed out again

            var full = await d.CliAsync("create", "--handle", Unique("pc"));
            Assert.NotEqual(0, full.ExitCode);
            Assert.Contains("the user id pool is exhausted (3 ranges of 65536", full.Stderr);
            // a privileged container takes no range
            var priv = Unique("pcp");
            var created = await d.CliAsync("create", "--handle", priv, "--privileged");
            Assert.True(created.ExitCode == 0, created.ToString());
            handles.Add(priv);
        }
        finally
        {
            foreach (var h in handles) await d.CliAsync("destroy", h);
        }
    }
}
