using System.Text;
using Garden.Linux.Agent;
using Garden.Protocol.Agent;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

public static class AgentRun
{
    /// <summary>Runs `sh -c script` in the container through the agent; returns stdout+stderr and the exit code.</summary>
    public static async Task<(string Output, int ExitCode)> ShAsync(this IAgentClient agent, string script, string user = "")
    {
        var req = new SpawnRequest { Id = $"t{Guid.NewGuid():N}"[..12], Path = "/bin/sh", User = user };
        req.Args.Add("-c");
        req.Args.Add(script);
        await using var stream = await agent.SpawnAttachedAsync(req, default);
        var output = new StringBuilder();
        while (await stream.ReadAsync(default) is { } evt)
        {
            if (evt.KindCase == AgentEvent.KindOneofCase.Output) output.Append(evt.Output.Data.ToStringUtf8());
            if (evt.KindCase == AgentEvent.KindOneofCase.Exited) return (output.ToString(), evt.Exited.ExitCode);
        }
        throw new InvalidOperationException("stream ended without exit");
    }
}

/// <summary>What a process inside a real container sees: its own namespaces, a private root, masked kernel paths.</summary>
public sealed class ContainerTests(RealContainerFixture fixture) : IClassFixture<RealContainerFixture>
{
    private IAgentClient Agent => fixture.Container.Agent;

    [InstallFact]
    public async Task The_agent_is_pid_1_and_the_hostname_is_the_handle_tail()
    {
        var (output, exit) = await Agent.ShAsync("cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname");
        Assert.Equal(0, exit);
        var lines = output.Split('\n');
        Assert.StartsWith("/.garden/agent", lines[0]);
        var handle = fixture.Container.Handle;
        Assert.Equal(handle.Length <= 49 ? handle : handle[^49..], lines[1]);
    }

    [InstallFact]
    public async Task Only_loopback_is_in_the_network_namespace_and_it_is_up()
    {
        var (output, _) = await Agent.ShAsync("ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("lo", lines[0]);
        Assert.Equal("0x9", lines[^1]); // IFF_UP | IFF_LOOPBACK
    }

    [InstallFact]
    public async Task Proc_dev_pts_shm_are_mounted_and_sys_is_read_only()
    {
        var (output, exit) = await Agent.ShAsync("grep -E ' (/proc|/dev|/dev/pts|/dev/shm|/sys) ' /proc/mounts | cut -d' ' -f2,3,4");
        Assert.Equal(0, exit);
        var mounts = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToDictionary(p => p[0], p => (Type: p[1], Opts: p[2]));
        Assert.Equal("proc", mounts["/proc"].Type);
        Assert.Equal("tmpfs", mounts["/dev"].Type);
        Assert.Equal("devpts", mounts["/dev/pts"].Type);
        Assert.Equal("tmpfs", mounts["/dev/shm"].Type);
        Assert.StartsWith("ro,", mounts["/sys"].Opts);
        var (write, code) = await Agent.ShAsync("touch /sys/kernel/x 2>&1");
        Assert.NotEqual(0, code);
        Assert.Contains("Read-only file system", write);
    }

    [InstallFact]
    public async Task Kernel_paths_are_masked()
    {
        // Masked paths read as empty inside, where the host shows content (whichever of them this kernel has).
        foreach (var path in new[] { "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/kcore" })
        {
            if (!File.Exists(path)) continue;
            var (output, _) = await Agent.ShAsync($"cat {path} | wc -c");
            Assert.Equal("0", output.Trim());
        }
        var (firmware, _) = await Agent.ShAsync("ls /sys/firmware | wc -l");
        Assert.Equal("0", firmware.Trim());
    }

    [InstallFact]
    public async Task Processes_run_with_the_default_capabilities_not_sys_admin()
    {
        var (output, _) = await Agent.ShAsync("grep CapBnd /proc/self/status; mount -t tmpfs x /mnt 2>&1 && echo mounted || echo refused");
        var bnd = Convert.ToUInt64(output.Split('\n')[0].Split('\t')[1], 16);
        Assert.Equal(0ul, bnd & (1ul << 21)); // CAP_SYS_ADMIN
        Assert.NotEqual(0ul, bnd & (1ul << 0)); // CAP_CHOWN
        Assert.Contains("refused", output);
    }

    [InstallFact]
    public async Task The_agent_binary_is_read_only_and_the_root_is_writable()
    {
        var (output, _) = await Agent.ShAsync("echo x > /.garden/agent; echo rc=$?; echo data > /etc/new-file && cat /etc/new-file");
        Assert.Contains("rc=1", output.Replace("rc=2", "rc=1"));
        Assert.Contains("data", output);
    }

    [InstallFact]
    public async Task Environment_of_the_container_reaches_the_init_and_only_the_host_sees_it()
    {
        var state = await fixture.Container.Runtime.StateAsync(fixture.Container.Handle, default);
        var environ = await File.ReadAllTextAsync($"/proc/{state!.Pid}/environ");
        Assert.Contains("FROM_CONTAINER=yes", environ.Split('\0'));
        // the agent is not dumpable: root in the container may not read it
        var (output, _) = await Agent.ShAsync("tr '\\0' '\\n' < /proc/1/environ; echo rc=$?");
        Assert.Contains("Permission denied", output);
        Assert.DoesNotContain("FROM_CONTAINER=yes", output.Split('\n'));
    }

    [InstallFact]
    public async Task Signal_all_reaches_grandchildren_and_spares_the_agent()
    {
        var req = new SpawnRequest { Id = "family", Path = "/bin/sh" };
        req.Args.AddRange(["-c", "sleep 1000 & sleep 1000 & wait"]);
        await Agent.SpawnAsync(req, default);
        await Task.Delay(200);
        await Agent.SignalAllAsync(9, default);
        await Task.Delay(200);
        var (ps, _) = await Agent.ShAsync("ps -o pid,comm | grep -c sleep");
        Assert.Equal("0", ps.Trim());
        Assert.Equal(1, (await Agent.PingAsync(default)).AgentPid);
        Assert.Contains(await Agent.ListAsync(default), p => p.Id == "family" && p.Exited && p.Exit.Signal == 9);
    }
}
