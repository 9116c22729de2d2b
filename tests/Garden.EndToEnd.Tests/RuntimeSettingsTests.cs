using System.Text.Json;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>gardend's memory settings (bench/FINDINGS-memory.md) reach every way of starting it: they are in the published
/// gardend.runtimeconfig.json, not in an environment only `make run` or the systemd unit would set, and the runtime of a
/// running gardend reports them in force (GET /debug/vars, "runtime").</summary>
public sealed class RuntimeSettingsTests
{
    [InstallFact]
    public async Task The_memory_settings_are_in_the_published_runtimeconfig_and_in_force_and_no_directory_is_watched()
    {
        var runtimeconfig = Path.ChangeExtension(TestPaths.GardendDll, ".runtimeconfig.json");
        var props = JsonDocument.Parse(await File.ReadAllTextAsync(runtimeconfig)).RootElement
            .GetProperty("runtimeOptions").GetProperty("configProperties");
        Assert.False(props.GetProperty("System.Runtime.TieredPGO").GetBoolean());
        var budget = props.GetProperty("System.GC.Gen0MaxBudget").GetInt64();
        Assert.InRange(budget, 1L << 20, 8L << 20); // 4 MiB: well under the 16 MiB the GC picks on this host

        var debugPort = RemoteDaemonFixture.FreePort();
        await using var d = new Gardend($"garden.garden-http.debug-address = \"127.0.0.1:{debugPort}\"");
        await d.StartAsync();
        using var http = new HttpClient();
        var runtime = JsonDocument.Parse(await http.GetStringAsync($"http://127.0.0.1:{debugPort}/debug/vars")).RootElement.GetProperty("runtime");
        // the GC's own report of its settings: the largest gen0 budget in force (16 MiB on this host without the setting)
        Assert.Equal(budget, runtime.GetProperty("gc").GetProperty("GCGen0MaxBudget").GetInt64());
        Assert.False(runtime.GetProperty("gc").GetProperty("ServerGC").GetBoolean());
        Assert.Equal("false", runtime.GetProperty("properties").GetProperty("System.Runtime.TieredPGO").GetString());
        Assert.InRange(runtime.GetProperty("threads").GetInt32(), 1, 200);

        // no file watch of the working directory's tree (appsettings reload): without containers gardend holds no inotify
        // instance at all (on cgroup v2 each container's OOM watch has one)
        var inotify = Directory.GetFiles($"/proc/{d.Pid}/fd").Count(fd => new FileInfo(fd).LinkTarget == "anon_inode:inotify");
        Assert.Equal(0, inotify);
        Assert.DoesNotContain(Directory.GetDirectories($"/proc/{d.Pid}/task"),
            t => File.ReadAllText(Path.Combine(t, "comm")).StartsWith(".NET File Watch", StringComparison.Ordinal));
        await d.StopAsync();
    }
}
