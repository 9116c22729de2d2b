using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>Networking on the real kernel (netns, veth, bridge, iptables, tc), driven through the CLI and checked from
/// where a user stands: the host's loopback, an "outside host" (a network namespace of the test's own behind a veth),
/// another container. The shared daemon serves the tests that only need containers; the tests that count kernel objects
/// or kill the daemon have a daemon of their own.</summary>
public sealed class NetworkTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    // ---------------------------------------------------------------------------------------------------------------
    // NetIn

    [InstallFact]
    public async Task NetIn_from_the_hosts_loopback_reaches_a_server_in_the_container()
    {
        var h = Unique("netin");
        try
        {
            Ok(await D.CliAsync("create", "--handle", h, "--net-in", "0:8080"));
            var info = Net.Info(await D.CliAsync("--json", "info", h));
            var port = Assert.Single(info.Ports);
            Assert.Equal(8080, port.Container);
            Assert.InRange(port.Host, D.PortPoolStart, D.PortPoolStart + 39);
            Assert.Contains($"{port.Host}:8080", (await D.CliAsync("info", h)).Stdout);

            await ServeHttp(D, h, "hello from the httpd in the container");
            var page = await Net.Eventually(() => Net.HttpGet("127.0.0.1", port.Host), r => r.Contains("200 OK"));
            Assert.Contains("200 OK", page);
            Assert.Contains("hello from the httpd in the container", page);

            // A second mapping at run time: a new port from the pool, printed as HOST:CONTAINER.
            var second = await D.CliAsync("net-in", h, "0:8081");
            Ok(second);
            var m = Regex.Match(second.Stdout.Trim(), @"\A(\d+):8081\z");
            Assert.True(m.Success, second.ToString());
            var port2 = int.Parse(m.Groups[1].Value);
            Assert.NotEqual(port.Host, port2);
            Assert.InRange(port2, D.PortPoolStart, D.PortPoolStart + 39);
            var ports = Net.Info(await D.CliAsync("--json", "info", h)).Ports;
            Assert.Contains((port.Host, 8080), ports);
            Assert.Contains((port2, 8081), ports);

            Ok(await D.CliAsync("run", h, "--detach", "--", "nc", "-ll", "-p", "8081", "-e", "echo", "second port"));
            var reply = await Net.Eventually(() => Net.Exchange("127.0.0.1", port2, ""), r => r.Contains("second port"));
            Assert.Equal("second port\n", reply);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task NetIn_from_an_outside_host_reaches_the_container_through_the_hosts_address()
    {
        var h = Unique("outin");
        await using var outside = await OutsideHost.CreateAsync();
        try
        {
            Ok(await D.CliAsync("create", "--handle", h, "--net-in", "0:8080", "--net-in", "0:7000"));
            var info = Net.Info(await D.CliAsync("--json", "info", h));
            var http = info.Ports.Single(p => p.Container == 8080).Host;
            var echo = info.Ports.Single(p => p.Container == 7000).Host;

            await ServeHttp(D, h, "served to the outside");
            Ok(await D.CliAsync("run", h, "--detach", "--", "nc", "-ll", "-p", "7000", "-e", "echo", "echo from inside"));

            // From the other namespace, to the host's address on the link between them.
            var page = await Net.Eventually(
                () => outside.NcAsync(outside.HostAddress, http, "GET /index.html HTTP/1.0\r\n\r\n"), r => r.Stdout.Contains("200 OK"));
            Assert.True(page.Stdout.Contains("200 OK") && page.Stdout.Contains("served to the outside"), page.ToString());

            var reply = await Net.Eventually(() => outside.NcAsync(outside.HostAddress, echo, "x\n"), r => r.Stdout.Contains("echo from inside"));
            Assert.Equal("echo from inside\n", reply.Stdout);

            // A port that is not mapped does not lead into the container.
            var unmapped = await outside.NcAsync(outside.HostAddress, D.PortPoolStart + 39, "x\n");
            Assert.DoesNotContain("echo from inside", unmapped.Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // NetOut and isolation

    [InstallFact]
    public async Task NetOut_opens_exactly_the_rule_and_everything_else_stays_refused()
    {
        var h = Unique("netout");
        await using var outside = await OutsideHost.CreateAsync();
        try
        {
            await outside.ServeAsync(9100, "outside-hello");
            await outside.ServeAsync(9101, "other-port"); // listening too: a refusal on it is the firewall's
            Ok(await D.CliAsync("create", "--handle", h));

            var before = await ContainerNc(D, h, outside.Address, 9100);
            Assert.NotEqual(0, before.ExitCode);
            Assert.DoesNotContain("outside-hello", before.Stdout);
            Assert.Contains("refused", before.Stderr);

            var rule = await D.CliAsync("net-out", h, "--network", outside.Address, "--port", "9100", "--protocol", "tcp");
            Ok(rule);

            var after = await ContainerNc(D, h, outside.Address, 9100);
            Assert.True(after.ExitCode == 0, after.ToString());
            Assert.Equal("outside-hello\n", after.Stdout);

            var otherPort = await ContainerNc(D, h, outside.Address, 9101);
            Assert.NotEqual(0, otherPort.ExitCode);
            Assert.DoesNotContain("other-port", otherPort.Stdout);
            Assert.Contains("refused", otherPort.Stderr);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task Containers_cannot_reach_each_other_nor_the_host_but_the_host_reaches_them()
    {
        var a = Unique("isoa");
        var b = Unique("isob");
        using var gatewayListener = new TcpListener(IPAddress.Any, 0);
        using var stop = new CancellationTokenSource();
        try
        {
            Ok(await D.CliAsync("create", "--handle", a));
            Ok(await D.CliAsync("create", "--handle", b));
            var ia = Net.Info(await D.CliAsync("--json", "info", a));
            var ib = Net.Info(await D.CliAsync("--json", "info", b));
            Assert.NotEqual(ia.ContainerIp, ib.ContainerIp);
            Assert.NotEqual(ia.Network, ib.Network);

            Ok(await D.CliAsync("run", a, "--detach", "--", "nc", "-ll", "-p", "7000", "-e", "echo", "from a"));
            // The host reaches A's address directly.
            var fromHost = await Net.Eventually(() => Net.Exchange(ia.ContainerIp, 7000, ""), r => r.Contains("from a"));
            Assert.Equal("from a\n", fromHost);

            var bToA = await ContainerNc(D, b, ia.ContainerIp, 7000);
            Assert.NotEqual(0, bToA.ExitCode);
            Assert.DoesNotContain("from a", bToA.Stdout);
            // A still serves the host after B's attempt.
            Assert.Equal("from a\n", await Net.Exchange(ia.ContainerIp, 7000, ""));

            // A listener of the host on every address, so also on B's gateway: the host reaches it there, B does not.
            gatewayListener.Start();
            var port = ((IPEndPoint)gatewayListener.LocalEndpoint).Port;
            _ = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        using var c = await gatewayListener.AcceptTcpClientAsync(stop.Token);
                        await c.GetStream().WriteAsync("gateway-hello\n"u8.ToArray(), stop.Token);
                    }
                    catch (Exception) when (stop.IsCancellationRequested) { return; }
                    catch (Exception) { }
                }
            });
            Assert.Equal("gateway-hello\n", await Net.Exchange(ib.HostIp, port, ""));
            var bToGateway = await ContainerNc(D, b, ib.HostIp, port);
            Assert.NotEqual(0, bToGateway.ExitCode);
            Assert.DoesNotContain("gateway-hello", bToGateway.Stdout);
            Assert.Contains("refused", bToGateway.Stderr);
        }
        finally
        {
            stop.Cancel();
            gatewayListener.Stop();
            await D.CliAsync("destroy", a, b);
        }
        Assert.Empty(Host.Leftovers(D, a));
        Assert.Empty(Host.Leftovers(D, b));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Bandwidth

    [InstallFact]
    public async Task A_bandwidth_limit_slows_a_transfer_into_the_container_and_is_read_back()
    {
        var h = Unique("bw");
        try
        {
            Ok(await D.CliAsync("create", "--handle", h, "--bandwidth", "256K"));
            var limits = Net.Limits(await D.CliAsync("--json", "limit", h));
            Assert.Equal(262144UL, limits.Rate);
            Assert.True(limits.Burst > 0, $"burst {limits.Burst}");
            Assert.Contains("256 KiB", (await D.CliAsync("limit", h)).Stdout);

            var ip = Net.Info(await D.CliAsync("--json", "info", h)).ContainerIp;
            Ok(await D.CliAsync("run", h, "--detach", "--", "nc", "-ll", "-p", "9001", "-e", "wc", "-c"));
            Assert.Equal("0", (await Net.Eventually(() => Net.Exchange(ip, 9001, ""), r => r.Trim() == "0")).Trim());

            var rxBefore = Net.U(await D.CliAsync("--json", "metrics", h), "rxBytes");
            var sw = Stopwatch.StartNew();
            var count = await Net.Exchange(ip, 9001, new string('z', 1_000_000), TimeSpan.FromSeconds(60));
            sw.Stop();
            Assert.Equal("1000000", count.Trim());
            // 256 KiB/s with a burst of a few KiB: close to 4 s; unlimited it is far under one.
            Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(2.5), $"1,000,000 bytes at 256K took only {sw.Elapsed}");
            var rxAfter = Net.U(await D.CliAsync("--json", "metrics", h), "rxBytes");
            Assert.True(rxAfter - rxBefore >= 1_000_000, $"rxBytes grew by {rxAfter - rxBefore}");

            var changed = Net.Limits(await D.CliAsync("--json", "limit", h, "--bandwidth", "1M:128K"));
            Assert.Equal((1048576UL, 131072UL), changed);
            Assert.Equal((1048576UL, 131072UL), Net.Limits(await D.CliAsync("--json", "limit", h)));
            var infoLimits = JsonDocument.Parse((await D.CliAsync("--json", "info", h)).Stdout).RootElement.GetProperty("limits");
            Assert.Equal(1048576UL, ulong.Parse(infoLimits.GetProperty("bandwidthRate").ToString()));
            Assert.Contains("1 MiB", (await D.CliAsync("limit", h)).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Bad input

    [InstallFact]
    public async Task Bad_network_input_is_refused_naming_the_field_and_the_daemon_keeps_serving()
    {
        var a = Unique("bada");
        var bad = Unique("badnet");
        var after = Unique("after");
        try
        {
            Ok(await D.CliAsync("create", "--handle", a, "--net-in", "0:80"));
            var ia = Net.Info(await D.CliAsync("--json", "info", a));
            var mapped = Assert.Single(ia.Ports).Host;

            async Task Refused(int exit, string[] args, params string[] mentions)
            {
                var r = await D.CliAsync(args);
                Assert.True(r.ExitCode == exit, $"garden {string.Join(' ', args)}: expected exit {exit}, got {r}");
                Assert.Equal("", r.Stdout);
                foreach (var m in mentions) Assert.True(r.Stderr.Contains(m, StringComparison.Ordinal), $"garden {string.Join(' ', args)}: no '{m}' in {r}");
            }

            await Refused(1, ["create", "--handle", bad, "--network", "10.0.0.1/33"], "network", "10.0.0.1/33");
            await Refused(1, ["create", "--handle", bad, "--network", "300.1.1.1"], "network", "300.1.1.1");
            var net = IPAddress.Parse(ia.Network.Split('/')[0]).GetAddressBytes();
            net[3] &= 0xf8;
            var supernet = $"{new IPAddress(net)}/29"; // holds A's /30
            await Refused(1, ["create", "--handle", bad, "--network", supernet], "network", supernet, "overlaps", a);
            await Refused(1, ["create", "--handle", bad, "--network", ia.ContainerIp], "network", ia.ContainerIp, a);
            await Refused(1, ["create", "--handle", bad, "--net-in", "0:70000"], "container port", "70000");
            Assert.DoesNotContain(bad, (await D.CliAsync("list")).Stdout);
            Assert.Empty(Host.Leftovers(D, bad));

            await Refused(1, ["net-in", a, $"{mapped}:80"], mapped.ToString(), "already");
            await Refused(1, ["net-out", a, "--network", "10.0.0.9-10.0.0.1"], "network", "10.0.0.9-10.0.0.1");
            await Refused(1, ["net-out", a, "--port", "80", "--protocol", "icmp"], "port", "icmp");
            Assert.Equal(ia.Ports, Net.Info(await D.CliAsync("--json", "info", a)).Ports);

            // The daemon keeps working, networking included.
            Ok(await D.CliAsync("create", "--handle", after, "--net-in", "0:7000"));
            var port = Assert.Single(Net.Info(await D.CliAsync("--json", "info", after)).Ports).Host;
            Ok(await D.CliAsync("run", after, "--detach", "--", "nc", "-ll", "-p", "7000", "-e", "echo", "still serving"));
            Assert.Equal("still serving\n", await Net.Eventually(() => Net.Exchange("127.0.0.1", port, ""), r => r.Contains("still serving")));
        }
        finally { await D.CliAsync("destroy", a, after); }
        Assert.Empty(Host.Leftovers(D, a));
        Assert.Empty(Host.Leftovers(D, after));
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Nothing left behind (daemons of their own: they count every kernel object of their prefix)

    [InstallFact]
    public async Task Destroy_and_a_hundred_create_destroy_cycles_leave_no_link_namespace_or_chain()
    {
        await using var d = new Gardend();
        var handles = new List<string>();
        try
        {
            await d.StartAsync();
            Assert.Empty(await Kernel.Leftovers(d.NetworkPrefix));

            var one = Unique("full");
            handles.Add(one);
            Ok(await d.CliAsync("create", "--handle", one, "--net-in", "0:8080", "--bandwidth", "1M"));
            Ok(await d.CliAsync("net-in", one, "0:8081"));
            Ok(await d.CliAsync("net-out", one, "--network", "10.0.0.0/8", "--port", "80-90", "--protocol", "tcp", "--log"));
            Assert.NotEmpty(await Kernel.ContainerLeftovers(d.NetworkPrefix, settle: false)); // the check sees them while they exist
            Ok(await d.CliAsync("destroy", one));
            Assert.Empty(await Kernel.ContainerLeftovers(d.NetworkPrefix));

            for (var batch = 0; batch < 25; batch++)
            {
                var cycle = Enumerable.Range(0, 4).Select(i => Unique($"cyc{batch * 4 + i}")).ToList();
                handles.AddRange(cycle);
                var results = await Task.WhenAll(cycle.Select(async (h, i) =>
                {
                    var create = (batch * 4 + i) % 2 == 0
                        ? await d.CliAsync("create", "--handle", h, "--net-in", "0:8080")
                        : await d.CliAsync("create", "--handle", h);
                    if (create.ExitCode != 0) return $"create {h}: {create}";
                    if (i % 2 == 1)
                    {
                        var rule = await d.CliAsync("net-out", h, "--network", "10.1.2.3", "--protocol", "tcp", "--port", "443");
                        if (rule.ExitCode != 0) return $"net-out {h}: {rule}";
                    }
                    var destroy = await d.CliAsync("destroy", h);
                    return destroy.ExitCode != 0 ? $"destroy {h}: {destroy}" : null;
                }));
                Assert.Empty(results.OfType<string>());
            }

            Assert.Equal("", (await d.CliAsync("list")).Stdout);
            Assert.Empty(await Kernel.ContainerLeftovers(d.NetworkPrefix));
            foreach (var h in handles) Assert.Empty(Host.Leftovers(d, h));
            // And the daemon still works after all that.
            var last = Unique("last");
            handles.Add(last);
            Ok(await d.CliAsync("create", "--handle", last, "--net-in", "0:8080"));
            Ok(await d.CliAsync("destroy", last));
            Assert.Empty(await Kernel.ContainerLeftovers(d.NetworkPrefix));
            // The shared chains stay while gardend runs; its orderly stop takes them.
            await d.StopAsync();
            Assert.Empty(await Kernel.Leftovers(d.NetworkPrefix));
        }
        finally
        {
            foreach (var h in (await d.CliAsync("list")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)) await d.CliAsync("destroy", h);
            await d.StopAsync();
            await Kernel.Scrub(d.NetworkPrefix);
        }
    }

    [InstallFact]
    public async Task A_daemon_killed_after_plumbing_a_network_leaves_nothing_after_restart()
    {
        await using var d = new Gardend("garden.fault.crash-at = \"create-network\"");
        var h = Unique("netcrash");
        try
        {
            await d.StartAsync();
            var create = await d.CliAsync("create", "--handle", h, "--net-in", "0:8080");
            Assert.NotEqual(0, create.ExitCode);
            await d.WaitForExitAsync();
            // The crash came after the veth and the namespace were made: there is something to clean.
            Assert.NotEmpty(await Kernel.Leftovers(d.NetworkPrefix, settle: false));

            d.Configure("");
            await d.StartAsync();
            Assert.DoesNotContain(h, (await d.CliAsync("list")).Stdout);
            Assert.Contains("unknown handle", (await d.CliAsync("info", h)).Stderr);
            var left = await Net.Eventually(() => Kernel.Leftovers(d.NetworkPrefix), l => l.Count == 0);
            Assert.Empty(left);
            Assert.Empty(Host.Leftovers(d, h));

            // The handle, the address and the port are free again.
            Ok(await d.CliAsync("create", "--handle", h, "--net-in", "0:8080"));
            Ok(await d.CliAsync("destroy", h));
            Assert.Empty(await Kernel.ContainerLeftovers(d.NetworkPrefix));
            await d.StopAsync();
            Assert.Empty(await Kernel.Leftovers(d.NetworkPrefix));
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.StopAsync();
            await Kernel.Scrub(d.NetworkPrefix);
        }
    }

    [InstallFact]
    public async Task After_kill_9_a_restart_restores_flushed_rules_and_removes_orphans_while_netin_keeps_serving()
    {
        await using var d = new Gardend();
        await using var outside = await OutsideHost.CreateAsync();
        var h = Unique("reconcile");
        var p = d.NetworkPrefix;
        try
        {
            await d.StartAsync();
            await outside.ServeAsync(9100, "outside-hello");
            await outside.ServeAsync(9101, "other-port");
            Ok(await d.CliAsync("create", "--handle", h, "--net-in", "0:8080"));
            Ok(await d.CliAsync("net-out", h, "--network", outside.Address, "--port", "9100", "--protocol", "tcp"));
            var info = Net.Info(await d.CliAsync("--json", "info", h));
            var port = Assert.Single(info.Ports).Host;
            await ServeHttp(d, h, "served across a restart");
            Assert.Contains("served across a restart", await Net.Eventually(() => Net.HttpGet("127.0.0.1", port), r => r.Contains("200 OK")));
            Assert.Equal("outside-hello\n", (await ContainerNc(d, h, outside.Address, 9100)).Stdout);

            await d.StopAsync(kill: true);
            var chain = $"{p}-o-{Net.Hex(info.ContainerIp)}";
            Ok(await Net.Run("/usr/sbin/iptables", "-w", "10", "-F", chain));
            Ok(await Net.Run("/usr/sbin/iptables", "-w", "10", "-N", $"{p}-o-deadbeef"));
            Ok(await Net.Run("/usr/sbin/ip", "link", "add", $"{p}vdeadbeef", "type", "veth", "peer", "name", $"{p}cdeadbeef"));
            Assert.Empty(await Kernel.RulesOf(chain));

            await d.StartAsync();
            var rules = await Net.Eventually(() => Kernel.RulesOf(chain), r => r.Any(l => l.Contains("-j REJECT")));
            Assert.Contains(rules, l => l.Contains("-j REJECT"));
            Assert.Contains(rules, l => l.Contains($"-d {outside.Address}/32") && l.Contains("--dport 9100") && l.Contains("-j ACCEPT"));
            var orphans = await Net.Eventually(
                () => Task.FromResult(new[] { $"{p}vdeadbeef", $"{p}cdeadbeef" }.Where(l => Directory.Exists($"/sys/class/net/{l}")).ToList()),
                l => l.Count == 0);
            Assert.Empty(orphans);
            var orphanChain = await Net.Eventually(async () => (await Kernel.Save("filter")).Contains($":{p}-o-deadbeef "), present => !present);
            Assert.False(orphanChain, $"{p}-o-deadbeef is still there");

            Assert.Contains("served across a restart", await Net.Eventually(() => Net.HttpGet("127.0.0.1", port), r => r.Contains("200 OK")));
            Assert.Equal("outside-hello\n", (await ContainerNc(d, h, outside.Address, 9100)).Stdout);
            var other = await ContainerNc(d, h, outside.Address, 9101);
            Assert.NotEqual(0, other.ExitCode);
            Assert.Contains("refused", other.Stderr);

            Ok(await d.CliAsync("destroy", h));
            Assert.Empty(await Kernel.ContainerLeftovers(p));
            await d.StopAsync();
            Assert.Empty(await Kernel.Leftovers(p));
        }
        finally
        {
            await d.CliAsync("destroy", h);
            await d.StopAsync();
            await Kernel.Scrub(p);
        }
    }

    [InstallFact]
    public async Task The_shared_chains_outlive_the_last_container_while_gardend_runs_and_go_when_it_stops_without_containers()
    {
        await using var d = new Gardend();
        var p = d.NetworkPrefix;
        var a = Unique("shared");
        var b = Unique("outlive");
        var done = false;
        try
        {
            await d.StartAsync();
            Assert.Empty(await Kernel.Leftovers(p));
            Ok(await d.CliAsync("create", "--handle", a, "--net-in", "0:8080"));
            var shared = await Kernel.Shared(p);
            Assert.Equal(Kernel.SharedJumps(p).Order(), Kernel.Jumps(shared).Order());

            // The last container goes: everything of it goes, the shared chains, their jumps and the IPv6 guard stay as they were.
            Ok(await d.CliAsync("destroy", a));
            Assert.Empty(await Kernel.ContainerLeftovers(p));
            Assert.Equal(shared, await Kernel.Shared(p));
            Assert.Contains(shared, l => l.StartsWith("ip6 filter: -A INPUT -j "));
            // The next first container finds them there; and it still gets its rules.
            Ok(await d.CliAsync("create", "--handle", b, "--net-in", "0:8080"));
            Assert.NotEmpty(await Kernel.ContainerLeftovers(p, settle: false));
            Assert.Equal(shared, await Kernel.Shared(p));

            // gardend stops while a container runs: the container keeps its rules, and the shared chains it needs.
            await d.StopAsync();
            Assert.Contains("gardend stopping", d.Log);
            Assert.NotEmpty(await Kernel.ContainerLeftovers(p, settle: false));
            Assert.Equal(shared, await Kernel.Shared(p));

            await d.StartAsync();
            Assert.Equal(shared, await Kernel.Shared(p));
            Ok(await d.CliAsync("destroy", b));
            Assert.Empty(await Kernel.ContainerLeftovers(p));
            Assert.Equal(shared, await Kernel.Shared(p));

            // Stopped (SIGTERM, as the tests' daemons are) with no container left: nothing of the prefix stays.
            await d.StopAsync();
            Assert.Empty(await Kernel.Leftovers(p));
            Assert.Contains("removed the shared chains and the IPv6 guard", d.Log);
            done = true;
        }
        finally
        {
            if (!done && !d.Running) await d.StartAsync(); // a failed test may leave a container: gardend destroys it
            if (d.Running) await d.CliAsync("destroy", a, b);
            await d.StopAsync();
            await Kernel.Scrub(p);
        }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Helpers

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.ToString());

    /// <summary>httpd in the container on port 8080, serving /www/index.html with the text.</summary>
    private static async Task ServeHttp(Gardend d, string h, string text)
    {
        Ok(await d.CliAsync("run", h, "--", "sh", "-c", $"mkdir -p /www && echo '{text}' > /www/index.html"));
        Ok(await d.CliAsync("run", h, "--detach", "--", "httpd", "-f", "-p", "8080", "-h", "/www"));
    }

    /// <summary>From inside the container: `echo x | nc -w 2 IP PORT`.</summary>
    private static Task<CliResult> ContainerNc(Gardend d, string h, string ip, int port) =>
        d.CliAsync("run", h, "--", "sh", "-c", $"echo x | nc -w 2 {ip} {port}");
}

internal sealed record NetInfo(string ContainerIp, string HostIp, string Network, List<(int Host, int Container)> Ports);

internal static class Net
{
    public static NetInfo Info(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        var e = JsonDocument.Parse(r.Stdout).RootElement;
        var ports = e.GetProperty("mappedPorts").EnumerateArray()
            .Select(p => (int.Parse(p.GetProperty("hostPort").ToString()), int.Parse(p.GetProperty("containerPort").ToString()))).ToList();
        return new NetInfo(e.GetProperty("containerIp").GetString()!, e.GetProperty("hostIp").GetString()!, e.GetProperty("network").GetString()!, ports);
    }

    public static (ulong Rate, ulong Burst) Limits(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        var l = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("limits");
        return (ulong.Parse(l.GetProperty("bandwidthRate").ToString()), ulong.Parse(l.GetProperty("bandwidthBurst").ToString()));
    }

    public static ulong U(CliResult r, string name)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonDocument.Parse(r.Stdout).RootElement.TryGetProperty(name, out var v) ? ulong.Parse(v.ToString()) : 0;
    }

    /// <summary>An address as chain and interface names carry it (eight hex digits).</summary>
    public static string Hex(string ip) =>
        string.Concat(IPAddress.Parse(ip).GetAddressBytes().Select(b => b.ToString("x2")));

    /// <summary>Polls until ok (or the time is up) and returns the last value; an exception counts as not yet.</summary>
    public static async Task<T> Eventually<T>(Func<Task<T>> get, Func<T, bool> ok, int seconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try
            {
                var v = await get();
                if (ok(v) || DateTime.UtcNow > deadline) return v;
            }
            catch (Exception) when (DateTime.UtcNow <= deadline) { }
            await Task.Delay(200);
        }
    }

    /// <summary>Connects, sends, half-closes, and reads until the other side closes.</summary>
    public static async Task<string> Exchange(string ip, int port, string send, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Parse(ip), port, cts.Token);
        var stream = client.GetStream();
        if (send.Length > 0) await stream.WriteAsync(Encoding.ASCII.GetBytes(send), cts.Token);
        client.Client.Shutdown(SocketShutdown.Send);
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms, cts.Token);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public static Task<string> HttpGet(string ip, int port) => Exchange(ip, port, "GET /index.html HTTP/1.0\r\n\r\n");

    public static async Task<CliResult> Run(string file, params string[] args) => await RunWithInput(file, args, null);

    public static async Task<CliResult> RunWithInput(string file, string[] args, string? stdin, int timeoutSeconds = 30)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        catch (IOException)
        {
            // it exited without reading its input (nc to a port nobody serves): its exit code and output say what happened
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeoutSeconds}s");
        }
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }
}

/// <summary>The kernel objects named with a daemon's prefix.</summary>
internal static class Kernel
{
    public static async Task<string> Save(string table)
    {
        var r = await Net.Run("/usr/sbin/iptables-save", "-t", table);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }

    /// <summary>ip6tables' filter table (the IPv6 guard).</summary>
    public static async Task<string> Save6()
    {
        var r = await Net.Run("/usr/sbin/ip6tables-save", "-t", "filter");
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.Stdout;
    }

    private static Regex ChainName(string prefix) => new($"(?<![A-Za-z0-9]){Regex.Escape(prefix)}-");

    /// <summary>Links, namespaces, iptables lines (both tables) and ip6tables lines of the prefix; empty = a clean host.</summary>
    public static async Task<List<string>> Leftovers(string prefix, bool settle = true)
    {
        var found = new List<string>();
        // A container's host-side veth goes with its network namespace, which the kernel frees in a work queue of its own
        // (cleanup_net) once the last process in it is reaped: under load that can be a moment after Destroy answered. A link
        // that is still there after 5 s is held by something and reported.
        var links = Links(prefix);
        for (var waited = 0; settle && links.Count > 0 && waited < 5000; waited += 100)
        {
            await Task.Delay(100);
            links = Links(prefix);
        }
        found.AddRange(links);
        if (Directory.Exists("/run/netns"))
            found.AddRange(Directory.GetFileSystemEntries("/run/netns").Select(Path.GetFileName).OfType<string>()
                .Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => $"netns {n}"));
        var chain = ChainName(prefix);
        foreach (var table in new[] { "filter", "nat" })
            found.AddRange((await Save(table)).Split('\n').Where(l => chain.IsMatch(l)).Select(l => $"{table}: {l}"));
        found.AddRange((await Save6()).Split('\n').Where(l => chain.IsMatch(l)).Select(l => $"ip6 filter: {l}"));
        return found;
    }

    private static List<string> Links(string prefix) =>
        Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>()
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal)).Select(n => $"link {n}").ToList();

    private static readonly string[] SharedSuffixes = ["forward", "input", "prerouting", "output", "postrouting"];

    /// <summary>What of the prefix belongs to no container: the shared chains with their fixed rules (no comment, or the
    /// prefix's own "p:..." comment), the jumps into them, and the IPv6 guard (it names no container).</summary>
    private static bool IsShared(string prefix, string leftover)
    {
        if (leftover.StartsWith("ip6 filter: ", StringComparison.Ordinal)) return true;
        if (!leftover.StartsWith("filter: ", StringComparison.Ordinal) && !leftover.StartsWith("nat: ", StringComparison.Ordinal)) return false;
        var line = leftover[(leftover.IndexOf(": ", StringComparison.Ordinal) + 2)..];
        var shared = string.Join('|', SharedSuffixes);
        var p = Regex.Escape(prefix);
        if (Regex.IsMatch(line, $@"\A:{p}-({shared}) ")) return true;
        if (Regex.IsMatch(line, $@"\A-A [A-Z]+ -j {p}-({shared})\z")) return true;
        return Regex.IsMatch(line, $@"\A-A {p}-({shared}) ") &&
               (!line.Contains("--comment ", StringComparison.Ordinal) || Regex.IsMatch(line, $@"--comment ""?{p}:"));
    }

    /// <summary>What a container left: <see cref="Leftovers"/> but the shared chains, which stay while gardend runs. A
    /// Destroy answers before its rules and links are removed: unless <paramref name="settle"/> is false, what is found is
    /// looked for again for up to 5 s until it is gone.</summary>
    public static async Task<List<string>> ContainerLeftovers(string prefix, bool settle = true)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            var found = (await Leftovers(prefix, settle: false)).Where(l => !IsShared(prefix, l)).ToList();
            if (!settle || found.Count == 0 || DateTime.UtcNow >= deadline) return found;
            await Task.Delay(50);
        }
    }

    /// <summary>The shared chains with their fixed rules, the jumps into them, and the IPv6 guard, as the kernel shows them.</summary>
    public static async Task<List<string>> Shared(string prefix) =>
        (await Leftovers(prefix, settle: false)).Where(l => IsShared(prefix, l)).ToList();

    public static IEnumerable<string> SharedJumps(string prefix) =>
        new[] { ("filter", "FORWARD", "forward"), ("filter", "INPUT", "input"), ("nat", "PREROUTING", "prerouting"), ("nat", "OUTPUT", "output"),
                ("nat", "POSTROUTING", "postrouting"), ("ip6 filter", "INPUT", "input"), ("ip6 filter", "FORWARD", "forward"), ("ip6 filter", "OUTPUT", "output") }
            .Select(j => $"{j.Item1}: -A {j.Item2} -j {prefix}-{j.Item3}");

    public static IEnumerable<string> Jumps(IEnumerable<string> shared) => shared.Where(l => Regex.IsMatch(l, @": -A [A-Z]+ -j "));

    /// <summary>The rules (-A lines) of one filter chain.</summary>
    public static async Task<List<string>> RulesOf(string chain) =>
        (await Save("filter")).Split('\n').Where(l => l.StartsWith($"-A {chain} ", StringComparison.Ordinal)).ToList();

    /// <summary>Removes whatever of the prefix a failed test left (after the assertions ran, so nothing is hidden).</summary>
    public static async Task Scrub(string prefix)
    {
        var left = await Leftovers(prefix);
        if (left.Count == 0) return;
        foreach (var n in Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>()
                     .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n[prefix.Length] is 'v' or 'c'))
            await Net.Run("/usr/sbin/ip", "link", "del", n);
        if (Directory.Exists("/run/netns"))
            foreach (var ns in Directory.GetFileSystemEntries("/run/netns").Select(Path.GetFileName).OfType<string>()
                         .Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
                await Net.Run("/usr/sbin/ip", "netns", "del", ns);
        foreach (var n in Directory.GetFileSystemEntries("/sys/class/net").Select(Path.GetFileName).OfType<string>()
                     .Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
            await Net.Run("/usr/sbin/ip", "link", "del", n);
        foreach (var table in new[] { "filter", "nat" })
        {
            var lines = (await Save(table)).Split('\n');
            foreach (var jump in lines.Where(l => Regex.IsMatch(l, $@"^-A [A-Z]+ -j {Regex.Escape(prefix)}-")))
                await Net.Run("/usr/sbin/iptables", ["-w", "10", "-t", table, "-D", .. jump.Split(' ')[1..]]);
            var chains = lines.Where(l => l.StartsWith($":{prefix}-", StringComparison.Ordinal)).Select(l => l[1..].Split(' ')[0]).ToList();
            foreach (var c in chains) await Net.Run("/usr/sbin/iptables", "-w", "10", "-t", table, "-F", c);
            foreach (var c in chains) await Net.Run("/usr/sbin/iptables", "-w", "10", "-t", table, "-X", c);
        }
        var lines6 = (await Save6()).Split('\n');
        foreach (var jump in lines6.Where(l => Regex.IsMatch(l, $@"^-A [A-Z]+ -j {Regex.Escape(prefix)}-")))
            await Net.Run("/usr/sbin/ip6tables", ["-w", "10", "-D", .. jump.Split(' ')[1..]]);
        var chains6 = lines6.Where(l => l.StartsWith($":{prefix}-", StringComparison.Ordinal)).Select(l => l[1..].Split(' ')[0]).ToList();
        foreach (var c in chains6) await Net.Run("/usr/sbin/ip6tables", "-w", "10", "-F", c);
        foreach (var c in chains6) await Net.Run("/usr/sbin/ip6tables", "-w", "10", "-X", c);
    }
}

/// <summary>A host outside: a network namespace of the test's own ("teo{X}", never a daemon's prefix: theirs are
/// "te" and a digit) joined to the host by a veth, 10.251.X.1/30 on the host's end and 10.251.X.2/30 in it.</summary>
internal sealed class OutsideHost : IAsyncDisposable
{
    private const string Ip = "/usr/sbin/ip";
    private readonly List<Process> _servers = [];

    public int X { get; }
    public string Ns => $"teo{X}";
    public string HostLink => $"teo{X}h";
    public string PeerLink => $"teo{X}n";
    public string HostAddress => $"10.251.{X}.1";
    public string Address => $"10.251.{X}.2";

    private OutsideHost(int x) => X = x;

    public static async Task<OutsideHost> CreateAsync()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var x = Random.Shared.Next(1, 255);
            var o = new OutsideHost(x);
            if (File.Exists($"/run/netns/{o.Ns}") || Directory.Exists($"/sys/class/net/{o.HostLink}")) continue;
            if ((await Net.Run(Ip, "-4", "-o", "addr")).Stdout.Contains($"10.251.{x}.")) continue;
            if ((await Net.Run(Ip, "netns", "add", o.Ns)).ExitCode != 0) continue; // taken meanwhile
            try
            {
                await o.Do(Ip, "link", "add", o.HostLink, "type", "veth", "peer", "name", o.PeerLink);
                await o.Do(Ip, "link", "set", o.PeerLink, "netns", o.Ns);
                await o.Do(Ip, "addr", "add", $"{o.HostAddress}/30", "dev", o.HostLink);
                await o.Do(Ip, "link", "set", o.HostLink, "up");
                await o.Do(Ip, "-n", o.Ns, "addr", "add", $"{o.Address}/30", "dev", o.PeerLink);
                await o.Do(Ip, "-n", o.Ns, "link", "set", o.PeerLink, "up");
                await o.Do(Ip, "-n", o.Ns, "link", "set", "lo", "up");
                await o.Do(Ip, "-n", o.Ns, "route", "add", "default", "via", o.HostAddress);
                return o;
            }
            catch
            {
                await o.DisposeAsync();
                throw;
            }
        }
        throw new InvalidOperationException("no free 10.251.X.0/30 for an outside host");
    }

    private async Task Do(string file, params string[] args)
    {
        var r = await Net.Run(file, args);
        Assert.True(r.ExitCode == 0, $"{file} {string.Join(' ', args)}: {r}");
    }

    /// <summary>A persistent server in the namespace that answers every connection with the reply; returns once it answers.</summary>
    public async Task ServeAsync(int port, string reply)
    {
        var psi = new ProcessStartInfo(Ip) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", Ns, "busybox", "nc", "-ll", "-p", port.ToString(), "-e", "echo", reply }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        _servers.Add(p);
        var got = await Net.Eventually(() => Net.Exchange(Address, port, ""), r => r == reply + "\n");
        Assert.Equal(reply + "\n", got);
    }

    /// <summary>busybox nc from inside the namespace, with the input on its stdin.</summary>
    public Task<CliResult> NcAsync(string ip, int port, string input) =>
        Net.RunWithInput(Ip, ["netns", "exec", Ns, "busybox", "nc", "-w", "3", ip, port.ToString()], input);

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _servers)
        {
            try { p.Kill(entireProcessTree: true); await p.WaitForExitAsync(); } catch (InvalidOperationException) { }
            p.Dispose();
        }
        // Whatever else still runs in the namespace was started by this test.
        var pids = await Net.Run(Ip, "netns", "pids", Ns);
        foreach (var pid in pids.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            if (int.TryParse(pid.Trim(), out var id))
                try { using var q = Process.GetProcessById(id); q.Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        if (Directory.Exists($"/sys/class/net/{HostLink}")) await Net.Run(Ip, "link", "del", HostLink);
        if (File.Exists($"/run/netns/{Ns}")) await Net.Run(Ip, "netns", "del", Ns);
    }
}
