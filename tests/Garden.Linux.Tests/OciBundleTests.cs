using System.Text.Json;
using Garden.Linux.Runtime;
using Xunit;

namespace Garden.Linux.Tests;

public sealed class OciBundleTests
{
    private static JsonElement Config(bool privileged = false, string handle = "h1") => JsonDocument.Parse(OciBundle.ToJson(
        new BundleSpec(handle, "/r", "/usr/local/bin/garden-agent", "/s/agent.sock", "/d/agent.log", "/garden-x/h1", privileged, ["A=1"]))).RootElement;

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
    public void Masks_kernel_paths_and_mounts_sys_read_only_unless_privileged()
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
        Assert.Contains("rw", SysOptions(true).Split(','));
    }

    [Fact]
    public void Unprivileged_gets_the_default_capabilities_privileged_all()
    {
        string[] Caps(bool p) => Config(p).GetProperty("process").GetProperty("capabilities").GetProperty("bounding")
            .EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(OciBundle.DefaultCapabilities, Caps(false));
        Assert.DoesNotContain("CAP_SYS_ADMIN", Caps(false));
        Assert.Contains("CAP_SYS_ADMIN", Caps(true));
        Assert.Equal(OciBundle.AllCapabilities.Count, Caps(true).Length);
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
}
