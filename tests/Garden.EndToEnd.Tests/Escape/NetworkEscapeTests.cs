using System.Net;
using System.Text.RegularExpressions;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>Issue 9, items 4 and 5, from inside an ordinary container of a real gardend, as its root would do it: a TCP
/// handshake written by hand in Ethernet frames (CAP_NET_RAW, AF_PACKET) to the gateway's MAC, aimed at what routing would
/// never send there: a host service bound to 127.0.0.1 (with Cloud Foundry's default public-networks NetOut rule, which
/// covers 127.0.0.0/8), and a host service listening on IPv6 any. Each test also shows the same program succeeding where
/// nothing stops it (a listener the container may reach, and an "outside host" namespace of the test's own behind an
/// ordinary veth), so "no answer" is the host's doing and not a broken probe.</summary>
public sealed class NetworkEscapeTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static readonly string[] PublicNetworks =
        ["0.0.0.0-9.255.255.255", "11.0.0.0-169.253.255.255", "169.255.0.0-172.15.255.255", "172.32.0.0-192.167.255.255", "192.169.0.0-255.255.255.255"];

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    /// <summary>The attack programs, read-only in the container at /attack.</summary>
    private static string AttackDir => Path.GetDirectoryName(AttackTool.Path("rawsyn"))!;

    private async Task<NetInfo> CreateAsync(string h, params string[] more)
    {
        Ok(await D.CliAsync(["create", "--handle", h, "--bind-mount", $"{AttackDir}:/attack", .. more]));
        Ok(await D.CliAsync(["net-out", h, .. PublicNetworks.SelectMany(n => new[] { "--network", n })]));
        return Net.Info(await D.CliAsync("--json", "info", h));
    }

    [InstallFact]
    public async Task A_raw_SYN_from_a_container_to_the_hosts_127_0_0_1_gets_no_answer_and_NetIn_from_loopback_still_works()
    {
        var h = Unique("lo-esc");
        await using var outside = await OutsideHost.CreateAsync();
        try
        {
            var info = await CreateAsync(h, "--net-in", "0:8080");
            using var loopback = new ProbeListener(IPAddress.Loopback);

            var attack = await D.CliAsync("run", h, "--", "/attack/rawsyn", "127.0.0.1", loopback.Port.ToString());
            Assert.True(attack.ExitCode == 1, attack.ToString());
            Assert.Contains("no answer", attack.Stdout);
            Assert.Empty(await loopback.WaitAsync(TimeSpan.FromSeconds(1)));

            // The probe works from this container: against the host's address on the container's link, once a NetOut
            // rule lets the container reach that port, the same frames get their SYN-ACK. (The container's own kernel
            // answers that SYN-ACK with a reset, which ends the half-open connection there, so only the SYN-ACK counts.)
            using var gateway = new ProbeListener(IPAddress.Any);
            Ok(await D.CliAsync("net-out", h, "--network", info.HostIp, "--port", gateway.Port.ToString(), "--protocol", "tcp"));
            var reach = await D.CliAsync("run", h, "--", "/attack/rawsyn", info.HostIp, gateway.Port.ToString());
            Assert.True(reach.ExitCode == 0, reach.ToString());
            Assert.Contains($"SYN-ACK from {info.HostIp}", reach.Stdout);

            // The probe and the listener see the loopback attack where nothing stops it: an outside host's veth with
            // route_localnet=1 (what the container's host end has) and no rules of ours.
            await File.WriteAllTextAsync($"/proc/sys/net/ipv4/conf/{outside.HostLink}/route_localnet", "1");
            using var control = new ProbeListener(IPAddress.Loopback);
            var open = await Net.Run("/usr/sbin/ip", "netns", "exec", outside.Ns, AttackTool.Path("rawsyn"), "127.0.0.1", control.Port.ToString());
            Assert.True(open.ExitCode == 0, open.ToString());
            Assert.Contains(await control.WaitAsync(TimeSpan.FromSeconds(5)), s => s.EndsWith(": garden-attack\n"));

            // NetIn from the host's 127.0.0.1 still reaches the container (its replies are what the drop lets through).
            var port = Assert.Single(info.Ports).Host;
            Ok(await D.CliAsync("run", h, "--detach", "--", "nc", "-ll", "-p", "8080", "-e", "echo", "netin-ok"));
            Assert.Equal("netin-ok\n", await Net.Eventually(() => Net.Exchange("127.0.0.1", port, ""), r => r.Contains("netin-ok")));

            // The daemon keeps serving.
            Ok(await D.CliAsync("run", h, "--", "true"));
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    [InstallFact]
    public async Task A_host_listener_on_IPv6_any_is_out_of_reach_of_a_container()
    {
        var h = Unique("v6-esc");
        await using var outside = await OutsideHost.CreateAsync();
        try
        {
            var info = await CreateAsync(h);
            var hostEnd = $"{D.NetworkPrefix}v{Net.Hex(info.ContainerIp)}";
            using var any6 = new ProbeListener(IPAddress.IPv6Any);

            // No IPv6 address on either end, IPv6 off on both, and the ip6tables guard in place.
            var inside = await D.CliAsync("run", h, "--", "sh", "-c", "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; cat /proc/net/if_inet6");
            Ok(inside);
            Assert.Equal("1", inside.Stdout.Split('\n')[0]);
            Assert.DoesNotContain("eth0", inside.Stdout);
            Assert.Equal("", (await Net.Run("/usr/sbin/ip", "-6", "-o", "addr", "show", "dev", hostEnd)).Stdout);
            Assert.Equal("1", File.ReadAllText($"/proc/sys/net/ipv6/conf/{hostEnd}/disable_ipv6").Trim());
            var guard = await Kernel.Save6();
            Assert.Contains($"-A INPUT -j {D.NetworkPrefix}-input", guard);
            Assert.Contains($"-A {D.NetworkPrefix}-input -i {D.NetworkPrefix}v+", guard);

            // What the container would aim at: the link-local address the host's end would have, the host's own global
            // IPv6 addresses (the kernel takes any of them on any link that has IPv6 on), and ::1.
            var targets = new List<string> { LinkLocal(File.ReadAllText($"/sys/class/net/{hostEnd}/address").Trim()), "::1" };
            var global = await Net.Run("/usr/sbin/ip", "-6", "-o", "addr", "show", "scope", "global");
            targets.AddRange(Regex.Matches(global.Stdout, @"inet6 ([0-9a-f:]+)/").Select(m => m.Groups[1].Value).Take(2));
            foreach (var target in targets)
            {
                var attack = await D.CliAsync("run", h, "--", "/attack/rawsyn", target, any6.Port.ToString());
                Assert.True(attack.ExitCode == 1, $"{target}: {attack}");
                Assert.Contains("no answer", attack.Stdout);
            }
            Assert.Empty(await any6.WaitAsync(TimeSpan.FromSeconds(1)));

            // The same program reaches the same listener over an ordinary veth (IPv6 on at the host's end, its link-local
            // address; IPv6 off at the outside end, as in a container, so only the program answers).
            await Net.Run("/usr/sbin/ip", "netns", "exec", outside.Ns, "/bin/sh", "-c", $"echo 1 > /proc/sys/net/ipv6/conf/{outside.PeerLink}/disable_ipv6");
            var outsideLinkLocal = await Net.Eventually(
                async () => Regex.Match((await Net.Run("/usr/sbin/ip", "-6", "-o", "addr", "show", "dev", outside.HostLink, "scope", "link")).Stdout,
                    @"inet6 (fe80[0-9a-f:]+)/64 scope link (?!tentative)").Groups[1].Value,
                a => a.Length > 0);
            Assert.NotEqual("", outsideLinkLocal);
            var open = await Net.Run("/usr/sbin/ip", "netns", "exec", outside.Ns, AttackTool.Path("rawsyn"), outsideLinkLocal, any6.Port.ToString());
            Assert.True(open.ExitCode == 0, open.ToString());
            Assert.Contains(await any6.WaitAsync(TimeSpan.FromSeconds(5)), s => s.EndsWith(": garden-attack\n"));
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    private static string LinkLocal(string mac)
    {
        var b = mac.Split(':').Select(x => Convert.ToByte(x, 16)).ToArray();
        var a = new byte[16];
        a[0] = 0xfe; a[1] = 0x80;
        a[8] = (byte)(b[0] ^ 2); a[9] = b[1]; a[10] = b[2]; a[11] = 0xff; a[12] = 0xfe; a[13] = b[3]; a[14] = b[4]; a[15] = b[5];
        return new IPAddress(a).ToString();
    }

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.ToString());
}
