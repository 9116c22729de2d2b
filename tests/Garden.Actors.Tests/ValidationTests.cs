using Garden.Actors.Container;
using Garden.Linux.Network;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The domain's one validator per concept (src/Actors/Validation), and the check of every request the host routes.</summary>
public sealed class ValidationTests
{
    private static ProcessSpec Proc(string id = "", string path = "/bin/true", string[]? env = null, RlimitSpec[]? rlimits = null) =>
        new(id, path, [], [.. env ?? []], "", "", [.. rlimits ?? []], null);

    private static void Refused(GardenException? problem, string startsWith)
    {
        Assert.NotNull(problem);
        Assert.Equal(ErrorKind.InvalidArgument, problem.Kind);
        Assert.StartsWith(startsWith, problem.Message);
    }

    [Theory]
    [InlineData("nofile", "nofile")]
    [InlineData("NOFILE", "nofile")]
    [InlineData("RLIMIT_NOFILE", "nofile")]
    [InlineData("rlimit_as", "as")]
    [InlineData("nofiles", null)]
    [InlineData("RLIMIT_", null)]
    [InlineData("", null)]
    public void Rlimit_names_are_read_in_every_spelling_and_unknown_ones_are_null(string name, string? canonical) =>
        Assert.Equal(canonical, RlimitNames.Canonical(name));

    [Fact]
    public void A_process_is_checked_id_path_env_and_rlimits()
    {
        Assert.Null(Proc().Problem());
        Assert.Null(Proc("job-1", env: ["A=b", "EMPTY="], rlimits: [new RlimitSpec("RLIMIT_NOFILE", 10, 20)]).Problem());
        Refused(Proc("bad id").Problem(), "process id: \"bad id\"");
        Refused(Proc(path: "").Problem(), "path:");
        Refused(Proc(env: ["NOEQUALS"]).Problem(), "env: \"NOEQUALS\"");
        Refused(Proc(env: ["=x"]).Problem(), "env:");
        Refused(Proc(rlimits: [new RlimitSpec("nofiles", 1, 1)]).Problem(), "rlimit: \"nofiles\" is not a resource limit");
        Refused(Proc(rlimits: [new RlimitSpec("nproc", 20, 10)]).Problem(), "rlimit nproc: the soft limit 20 is above the hard limit 10");
    }

    [Theory]
    [InlineData(0, "signal: 0 is not a signal number")]
    [InlineData(65, "signal: 65")]
    [InlineData(-9, "signal: -9")]
    public void Signals_outside_1_to_64_are_refused(int signal, string message)
    {
        Refused(Signals.Problem(signal), message);
        Assert.Null(Signals.Problem(9));
        Assert.Null(Signals.Problem(64));
    }

    [Theory]
    [InlineData(0u, 80u)]
    [InlineData(24u, 0u)]
    [InlineData(10_001u, 80u)]
    public void A_tty_resize_outside_1_to_10000_is_refused(uint rows, uint cols)
    {
        Refused(new TtySize(rows, cols).Problem(), $"tty: {rows}x{cols}");
        Assert.Null(new TtySize(24, 80).Problem());
    }

    [Fact]
    public void A_NetOut_rule_is_read_from_its_parts_and_refused_naming_the_rule_and_field()
    {
        var rule = NetworkRequests.Rule(1, [("10.0.0.0/8", "")], [(80, 0)], null, null, log: true, "rule 1");
        Assert.Equal(NetProtocol.Tcp, rule.Protocol);
        Assert.Equal([new PortRange(80, 80)], rule.Ports);
        GardenException Bad(Action a) => Assert.Throws<GardenException>(a);
        Assert.StartsWith("rule 2 protocol: 9", Bad(() => NetworkRequests.Rule(9, [], [], null, null, false, "rule 2")).Message);
        Assert.StartsWith("rule 1 network: \"not-an-ip\"", Bad(() => NetworkRequests.Rule(0, [("not-an-ip", "")], [], null, null, false, "rule 1")).Message);
        Assert.StartsWith("rule 1 port:", Bad(() => NetworkRequests.Rule(1, [], [(70000, 0)], null, null, false, "rule 1")).Message);
        Assert.StartsWith("ports:", Bad(() => NetworkRequests.Rule(3, [], [(80, 0)], null, null, false, "rule 1")).Message);
    }

    [Theory]
    [InlineData("", null)]
    [InlineData("10.20.0.10", "10.20.0.8/30 10.20.0.10")]
    [InlineData("10.20.0.0/24", "10.20.0.0/24 ")]
    [InlineData(" 10.20.0.9/24 ", "10.20.0.0/24 10.20.0.9")]
    public void A_network_request_is_read_as_a_subnet_and_maybe_an_address(string request, string? expected)
    {
        var parsed = NetworkRequests.Parse(request);
        Assert.Equal(expected, parsed is { } p ? $"{p.Subnet} {p.Address}" : null);
    }

    [Fact]
    public void Every_routed_request_is_checked_before_it_reaches_its_container()
    {
        Refused(Requests.Problem(new ContainerProtocol.RunProcess("h", Proc(path: ""), false)), "path:");
        Refused(Requests.Problem(new ContainerProtocol.AttachProcess("h", "../p", 0)), "process id:");
        Refused(Requests.Problem(new ContainerProtocol.SignalProcess("h", "p", 99)), "signal:");
        Refused(Requests.Problem(new ContainerProtocol.SignalProcess("h", "p\n", 9)), "process id: \"p\\n\"");
        Refused(Requests.Problem(new ContainerProtocol.SetProcessTty("h", "p", new TtySize(0, 0))), "tty:");
        Refused(Requests.Problem(new ContainerProtocol.SetProperty("h", "", "v")), "key:");
        Refused(Requests.Problem(new ContainerProtocol.SetLimits("h", new Limits(Pids: 0))), "pids:");
        Refused(Requests.Problem(new ContainerProtocol.SetGraceTime("h", TimeSpan.FromSeconds(-1))), "grace time:");
        Refused(Requests.Problem(new ContainerProtocol.NetIn("h", 0, 0)), "container port:");
        Refused(Requests.Problem(new ContainerProtocol.NetIn("h", -1, 80)), "host port:");
        Refused(Requests.Problem(new ContainerProtocol.NetOut("h", [])), "rules: no rule given");
        Refused(Requests.Problem(new ContainerProtocol.NetOut("h", [new NetOutRule(NetProtocol.All, [], [], IcmpType: 3)])), "icmp:");
        Assert.Null(Requests.Problem(new ContainerProtocol.GetInfo("h")));
        Assert.Null(Requests.Problem(new ContainerProtocol.SignalProcess("h", "p", 15)));
        Assert.Null(Requests.Problem(new ContainerProtocol.NetIn("h", 0, 80)));
    }

    [Theory]
    [InlineData("nofiles = 10", "garden.default-rlimits.nofiles: rlimit: \"nofiles\" is not a resource limit")]
    [InlineData("nofile = lots", "garden.default-rlimits.nofile: \"lots\" is not a number")]
    public void Default_rlimits_are_checked_at_start_like_a_runs_own(string setting, string message)
    {
        var e = Assert.Throws<Akka.Configuration.ConfigurationException>(() => GardenSettings.Create(
            Akka.Configuration.ConfigurationFactory.ParseString($"garden.default-rlimits {{ {setting} }}")));
        Assert.StartsWith(message, e.Message);
    }
    [Fact]
    public void Arguments_and_environment_beyond_what_execve_takes_are_refused_naming_env_or_args()
    {
        var string128K = new string('x', ExecArgs.MaxString);
        Assert.Null(ExecArgs.Problem([], ["A=" + string128K[2..]]));
        Refused(ExecArgs.Problem([], ["A=" + string128K]), "env: \"A=xxx");
        Refused(ExecArgs.Problem([string128K + "x"], []), "args: ");
        var many = Enumerable.Range(0, 9).Select(i => $"V{i}=" + new string('y', 120_000)).ToArray();
        Assert.Null(ExecArgs.Problem([], many[..8]));
        Refused(ExecArgs.Problem([], many), "env: the environment (9 entries");
        Refused(ExecArgs.Problem(many, ["A=1"]), "args: ");
        Refused(Proc(env: many).Problem(), "env: ");
    }

    [Theory]
    [InlineData(ulong.MaxValue, null, "memory: 18446744073709551615 bytes is out of range")]
    [InlineData(null, ulong.MaxValue, "pids: 18446744073709551615 is out of range")]
    [InlineData(3UL << 20, null, "memory: 3 MiB is out of range")]
    public void A_limit_beyond_what_the_kernel_takes_is_refused_naming_the_value_as_sent(ulong? memory, ulong? pids, string message) =>
        Refused(new Limits(MemoryBytes: memory, Pids: pids).Problem(), message);
    [Fact]
    public void A_process_s_environment_is_the_container_s_with_its_own_replacing_a_key_in_place()
    {
        Assert.Equal(["CONTAINER_ENV=1", "TEST=hello", "FRUIT=banana"],
            EnvEntries.Merge(["CONTAINER_ENV=1", "TEST=hi"], ["TEST=hello", "FRUIT=banana"]).ToArray());
        Assert.Equal(["A=3", "B=2"], EnvEntries.Merge(["A=1", "B=2", "A=3"], []).ToArray());
        Assert.Equal(["A=", "PATH=/x"], EnvEntries.Merge(["A=1"], ["A=", "PATH=/x"]).ToArray());
    }

    [Fact]
    public void A_pea_image_must_be_absolute_and_limits_need_an_image()
    {
        Assert.Null((Proc() with { Image = "/images/a" }).Problem());
        Refused((Proc() with { Image = "images/a" }).Problem(), "image:");
        Refused((Proc() with { PeaLimits = new PeaLimits(1 << 20, 0, 0) }).Problem(), "pea_limits:");
    }

    [Fact]
    public void A_pea_image_may_neither_be_hold_nor_lie_inside_what_only_gardend_uses()
    {
        string[] hostOnly = ["/var/lib/garden", "/run/garden/garden.sock"];
        var dir = Directory.CreateTempSubdirectory("garden-test-peaimage-").FullName;
        try
        {
            Assert.Null(PeaImage.Problem(dir, dir, hostOnly));
            Refused(PeaImage.Problem("/", "/", hostOnly), "image:");                      // holds the state dir
            Refused(PeaImage.Problem("/var", "/var", hostOnly), "image:");
            Refused(PeaImage.Problem("/var/lib/garden/depot", "/var/lib/garden/depot", hostOnly), "image:");  // inside it
            var viaLink = PeaImage.Problem("/tmp/innocent", "/var/lib/garden", hostOnly);   // a symlink resolved to it
            Refused(viaLink, "image:");
            Assert.Contains("/tmp/innocent", viaLink!.Message);
            Assert.Contains("that is /var/lib/garden", viaLink.Message);
            Refused(PeaImage.Problem("/no/such", null, hostOnly), "image:");
            Refused(PeaImage.Problem("rel", "rel", hostOnly), "image:");
        }
        finally
        {
            Directory.Delete(dir);
        }
    }
}
