using Garden.Cli.Args;

namespace Garden.Cli.Tests;

public class ParserTests
{
    private static Invocation Parse(params string[] args) => CommandLineParser.Parse(args);
    private static T Command<T>(params string[] args) where T : CliCommand => Assert.IsType<T>(Parse(args).Command);

    private static UsageException Fails(params string[] args) =>
        Assert.Throws<UsageException>(() => CommandLineParser.Parse(args));

    [Fact]
    public void Simple_commands()
    {
        Command<PingCommand>("ping");
        Command<CapacityCommand>("capacity");
        Assert.Equal("h", Command<InfoCommand>("info", "h").Handle);
        Assert.Equal(["a", "b", "c"], Command<DestroyCommand>("destroy", "a", "b", "c").Handles);
    }

    [Fact]
    public void Global_flags_before_or_after_the_command()
    {
        var before = Parse("--socket", "/tmp/g.sock", "--json", "list");
        Assert.Equal(new GlobalOptions("/tmp/g.sock", true), before.Globals);
        var after = Parse("list", "--json", "--socket=/tmp/g.sock");
        Assert.Equal(new GlobalOptions("/tmp/g.sock", true), after.Globals);
        Assert.IsType<ListCommand>(after.Command);
        Assert.Equal(new GlobalOptions(null, false), Parse("ping").Globals);
        // the last --socket wins: a wrapper that passes one can be overridden
        Assert.Equal("/b.sock", Parse("--socket", "/a.sock", "list", "--socket", "/b.sock").Globals.Socket);
        Assert.Equal("/b.sock", Parse("--socket", "/a.sock", "--socket=/b.sock", "list").Globals.Socket);
    }

    [Fact]
    public void Help_and_version()
    {
        Assert.Null(Command<HelpCommand>("--help").Topic);
        Assert.Null(Command<HelpCommand>("-h").Topic);
        Assert.Equal("run", Command<HelpCommand>("run", "--help").Topic);
        Assert.Equal("create", Command<HelpCommand>("help", "create").Topic);
        Assert.Equal("info", Command<HelpCommand>("info", "-h", "--bogus").Topic);
        Command<VersionCommand>("--version");
        Assert.Contains("property", Usage.Overview);
        foreach (var name in Usage.CommandNames) Assert.Contains(name, Usage.Overview);
    }

    [Fact]
    public void Create_with_every_flag()
    {
        var c = Command<CreateCommand>("create", "--handle", "h1", "--rootfs", "/srv/rootfs", "--env", "A=1",
            "--env=B=x=y", "--property", "p=q", "--property", "empty=", "--privileged");
        Assert.Equal("h1", c.Handle);
        Assert.Equal("/srv/rootfs", c.Rootfs);
        Assert.Equal(["A=1", "B=x=y"], c.Env);
        Assert.Equal("q", c.Properties["p"]);
        Assert.Equal("", c.Properties["empty"]);
        Assert.True(c.Privileged);

        var d = Command<CreateCommand>("create");
        Assert.Null(d.Handle);
        Assert.Null(d.Rootfs);
        Assert.Empty(d.Env);
        Assert.False(d.Privileged);
    }

    [Fact]
    public void Create_makes_a_relative_rootfs_absolute()
    {
        var c = Command<CreateCommand>("create", "--rootfs", "some/dir");
        Assert.Equal(Path.GetFullPath("some/dir"), c.Rootfs);
    }

    [Theory]
    [InlineData("--env", "FOO")]
    [InlineData("--env", "=bar")]
    [InlineData("--property", "novalue")]
    public void Malformed_key_value_names_the_flag_and_the_value(string flag, string value)
    {
        var e = Fails("create", flag, value);
        Assert.Contains(flag, e.Message);
        Assert.Contains($"'{value}'", e.Message);
    }

    [Fact]
    public void Unknown_flags_and_commands_are_named()
    {
        Assert.Contains("'--net-out'", Fails("create", "--net-out", "10.0.0.0/8").Message);
        Assert.Contains("'--bogus'", Fails("--bogus", "ping").Message);
        Assert.Contains("'--kill'", Fails("destroy", "h", "--kill").Message);
        Assert.Contains("'frobnicate'", Fails("frobnicate").Message);
        Assert.Contains("missing HANDLE", Fails("stream-in").Message);
        Assert.Contains("missing command", Fails("--json").Message);
    }

    [Fact]
    public void Missing_and_extra_arguments_are_named()
    {
        Assert.Contains("missing HANDLE", Fails("info").Message);
        Assert.Contains("'extra'", Fails("info", "h", "extra").Message);
        Assert.Contains("'x'", Fails("ping", "x").Message);
        Assert.Contains("missing PROCESS-ID", Fails("attach", "h").Message);
        Assert.Contains("missing SIGNAL", Fails("signal", "h", "p").Message);
        Assert.Contains("missing HANDLE", Fails("destroy").Message);
        Assert.Contains("--handle needs a value", Fails("create", "--handle").Message);
        Assert.Contains("--handle needs a value", Fails("create", "--handle", "--privileged").Message);
        Assert.Contains("more than once", Fails("create", "--handle", "a", "--handle", "b").Message);
        Assert.Contains("takes no value", Fails("stop", "h", "--kill=yes").Message);
        Assert.Contains("--socket needs a value", Fails("--socket").Message);
    }

    [Fact]
    public void Words_are_what_they_say()
    {
        // no response files: "@x" is a word like any other
        Assert.Equal("@values.txt", Command<PropertyCommand>("property", "h", "set", "k", "@values.txt").Value);
        // command names are only commands where a command goes
        Assert.Equal("ping", Command<InfoCommand>("info", "ping").Handle);
        Assert.Equal(["help", "version"], Command<DestroyCommand>("destroy", "help", "version").Handles);
        // a value that starts with '-' is given inline; a separate one would be a flag
        Assert.Equal("-x", Command<CreateCommand>("create", "--handle=-x").Handle);
        Assert.Contains("--handle needs a value", Fails("create", "--handle", "-x").Message);
        Assert.Contains("'-9'", Fails("signal", "h", "p", "-9").Message);
    }

    [Fact]
    public void Run_with_flags_and_command_after_dashes()
    {
        var r = Command<RunCommand>("run", "h", "--id", "p1", "--user", "vcap", "--dir", "/tmp", "--env", "A=1",
            "--rlimit", "nofile=1024", "--rlimit", "CORE=0:unlimited", "--tty", "--detach", "--", "sh", "-c", "echo --tty");
        Assert.Equal("h", r.Handle);
        Assert.Equal("p1", r.Id);
        Assert.Equal("vcap", r.User);
        Assert.Equal("/tmp", r.Dir);
        Assert.Equal(["A=1"], r.Env);
        Assert.Equal([new RlimitArg("RLIMIT_NOFILE", 1024, 1024), new RlimitArg("RLIMIT_CORE", 0, Values.Unlimited)], r.Rlimits);
        Assert.True(r.Tty);
        Assert.True(r.Detach);
        Assert.Equal("sh", r.Path);
        Assert.Equal(["-c", "echo --tty"], r.Args);
    }

    [Fact]
    public void Run_command_may_follow_the_handle_without_dashes_and_keeps_its_own_flags()
    {
        var r = Command<RunCommand>("run", "--env", "A=1", "h", "ls", "-la", "--tty");
        Assert.Equal("ls", r.Path);
        Assert.Equal(["-la", "--tty"], r.Args);
        Assert.False(r.Tty);
        Assert.Null(r.Id);
    }

    [Fact]
    public void Run_errors_carry_the_command_name()
    {
        var e = Fails("run", "h");
        Assert.Contains("missing the command", e.Message);
        Assert.Equal("run", e.Command);
        Assert.Equal("run", Fails("run", "h", "--").Command);
        Assert.Contains("missing HANDLE", Fails("run").Message);
        var bad = Fails("run", "h", "--bogus", "--", "ls");
        Assert.Contains("'--bogus'", bad.Message);
        Assert.Equal("run", bad.Command);
        Assert.Equal("attach", Fails("attach", "h").Command);
    }

    [Fact]
    public void Global_flags_are_not_taken_from_the_run_command()
    {
        var i = Parse("run", "h", "--json", "--", "prog", "--json", "--socket", "x");
        Assert.True(i.Globals.Json);
        Assert.Null(i.Globals.Socket);
        Assert.Equal(["--json", "--socket", "x"], ((RunCommand)i.Command).Args);
    }

    [Theory]
    [InlineData("nofile=1024", "RLIMIT_NOFILE", 1024UL, 1024UL)]
    [InlineData("NOFILE=10:20", "RLIMIT_NOFILE", 10UL, 20UL)]
    [InlineData("rlimit_nproc=5", "RLIMIT_NPROC", 5UL, 5UL)]
    [InlineData("core=unlimited", "RLIMIT_CORE", ulong.MaxValue, ulong.MaxValue)]
    [InlineData("as=100:infinity", "RLIMIT_AS", 100UL, ulong.MaxValue)]
    [InlineData("nofile=20:10", "RLIMIT_NOFILE", 20UL, 10UL)] // syntax only: the daemon refuses soft above hard (CommandLineTests)
    public void Rlimit_forms(string text, string name, ulong soft, ulong hard) =>
        Assert.Equal(new RlimitArg(name, soft, hard), Values.Rlimit("--rlimit", text));

    [Theory]
    [InlineData("nofile", "NAME=N")]
    [InlineData("no-file=1", "'no-file' in 'no-file=1' is not an rlimit name")]
    [InlineData("nofile=abc", "'nofile=abc'")]
    [InlineData("nofile=-1", "'nofile=-1'")]
    [InlineData("nofile=1:", "'nofile=1:'")]
    public void Bad_rlimits_are_named(string text, string expected)
    {
        var e = Assert.Throws<UsageException>(() => Values.Rlimit("--rlimit", text));
        Assert.Contains(expected, e.Message);
        Assert.Contains("--rlimit", e.Message);
    }

    [Theory]
    [InlineData("15", 15)]
    [InlineData("TERM", 15)]
    [InlineData("SIGTERM", 15)]
    [InlineData("sigkill", 9)]
    [InlineData("kill", 9)]
    [InlineData("HUP", 1)]
    [InlineData("INT", 2)]
    [InlineData("QUIT", 3)]
    [InlineData("USR1", 10)]
    [InlineData("SIGUSR2", 12)]
    [InlineData("WINCH", 28)]
    [InlineData("64", 64)]
    public void Signal_names_and_numbers(string text, int expected) => Assert.Equal(expected, Signals.Parse(text));

    [Theory]
    [InlineData("SIGBOGUS")]
    [InlineData("")]
    [InlineData("-9")]
    public void Bad_signals(string text) => Assert.Throws<UsageException>(() => Signals.Parse(text));

    [Fact]
    public void Signal_command()
    {
        var s = Command<SignalCommand>("signal", "h", "p1", "SIGHUP");
        Assert.Equal(("h", "p1", 1), (s.Handle, s.ProcessId, s.Signal));
        Assert.Contains("'NOPE'", Fails("signal", "h", "p1", "NOPE").Message);
    }

    [Fact]
    public void Attach_and_stop()
    {
        var a = Command<AttachCommand>("attach", "h", "p1", "--from", "42");
        Assert.Equal(("h", "p1", 42UL), (a.Handle, a.ProcessId, a.FromOffset));
        Assert.Equal(0UL, Command<AttachCommand>("attach", "h", "p1").FromOffset);
        Assert.Contains("'x'", Fails("attach", "h", "p1", "--from", "x").Message);
        Assert.True(Command<StopCommand>("stop", "h", "--kill").Kill);
        Assert.False(Command<StopCommand>("stop", "h").Kill);
    }

    [Fact]
    public void List_filters()
    {
        var l = Command<ListCommand>("list", "--property", "a=1", "--property", "b=2");
        Assert.Equal(2, l.Properties.Count);
        Assert.Equal("2", l.Properties["b"]);
        Assert.Empty(Command<ListCommand>("list").Properties);
    }

    [Fact]
    public void Property_actions()
    {
        Assert.Equal(new PropertyCommand("h", PropertyAction.List), Command<PropertyCommand>("property", "h"));
        Assert.Equal(new PropertyCommand("h", PropertyAction.Get, "k"), Command<PropertyCommand>("property", "h", "get", "k"));
        Assert.Equal(new PropertyCommand("h", PropertyAction.Set, "k", "v w"), Command<PropertyCommand>("property", "h", "set", "k", "v w"));
        Assert.Equal(new PropertyCommand("h", PropertyAction.Set, "k", "-x"), Command<PropertyCommand>("property", "h", "set", "k", "--", "-x"));
        Assert.Equal(new PropertyCommand("h", PropertyAction.Remove, "k"), Command<PropertyCommand>("property", "h", "rm", "k"));
        Assert.Contains("missing VALUE", Fails("property", "h", "set", "k").Message);
        Assert.Contains("missing KEY", Fails("property", "h", "get").Message);
        Assert.Contains("'delete'", Fails("property", "h", "delete", "k").Message);
        Assert.Contains("'extra'", Fails("property", "h", "rm", "k", "extra").Message);
    }

    [Theory]
    [InlineData("64M", 64UL << 20)]
    [InlineData("1G", 1UL << 30)]
    [InlineData("1.5G", 3UL << 29)]
    [InlineData("512KiB", 512UL << 10)]
    [InlineData("2gb", 2UL << 30)]
    [InlineData("4096", 4096UL)]
    public void Sizes_take_binary_units(string text, ulong bytes) => Assert.Equal(bytes, Values.Size("--memory", text));

    [Theory]
    [InlineData("64X")]
    [InlineData("M")]
    [InlineData("-5M")]
    [InlineData("0")]
    [InlineData("")]
    public void Bad_sizes_are_named(string text)
    {
        var e = Assert.Throws<UsageException>(() => Values.Size("--disk", text));
        Assert.Contains("--disk", e.Message);
    }

    [Fact]
    public void Create_and_limit_take_resource_flags()
    {
        var c = Command<CreateCommand>("create", "--memory", "64M", "--cpu-weight", "512", "--cpu-quota", "0.2", "--pids", "100", "--disk", "1G");
        Assert.Equal(new LimitArgs(64UL << 20, 512, 0.2, 100, 1UL << 30), c.Limits);
        var l = Command<LimitCommand>("limit", "h", "--memory", "128M");
        Assert.Equal("h", l.Handle);
        Assert.Equal(new LimitArgs(Memory: 128UL << 20), l.Limits);
        Assert.False(Command<LimitCommand>("limit", "h").Limits.Any);
        Assert.Equal("h", Command<MetricsCommand>("metrics", "h").Handle);
        Assert.Contains("--cpu-quota", Fails("limit", "h", "--cpu-quota", "0").Message);
        Assert.Contains("--pids", Fails("create", "--pids", "-1").Message);
        Assert.Contains("'--memory'", Fails("limit", "h", "--memory", "lots").Message.Replace("--memory:", "'--memory'"));
    }

    [Fact]
    public void Create_takes_network_flags_and_bandwidth()
    {
        var c = Command<CreateCommand>("create", "--network", "10.254.0.0/30", "--net-in", "8080:80", "--net-in=0:22",
            "--bandwidth", "1M:512K");
        Assert.Equal("10.254.0.0/30", c.Network);
        Assert.Equal([new PortMappingArg(8080, 80), new PortMappingArg(0, 22)], c.NetIn);
        Assert.Equal(new LimitArgs(Bandwidth: new BandwidthArg(1UL << 20, 512UL << 10)), c.Limits);
        Assert.True(c.Limits!.Any);

        var d = Command<CreateCommand>("create");
        Assert.Null(d.Network);
        Assert.Empty(d.NetIn!);
        Assert.Null(d.Limits!.Bandwidth);
        Assert.Equal("10.0.0.5", Command<CreateCommand>("create", "--network", "10.0.0.5").Network);   // the daemon reads it
        Assert.Contains("--network", Fails("create", "--network", "").Message);
        Assert.Contains("--network", Fails("create", "--network=").Message);
        Assert.Contains("more than once", Fails("create", "--network", "a", "--network", "b").Message);
    }

    [Theory]
    [InlineData("1M", 1UL << 20, 0UL)]
    [InlineData("512K:64K", 512UL << 10, 64UL << 10)]
    [InlineData("1000:1500", 1000UL, 1500UL)]
    [InlineData("1.5MiB:1M", 3UL << 19, 1UL << 20)]
    public void Bandwidth_is_rate_and_optional_burst(string text, ulong rate, ulong burst)
    {
        Assert.Equal(new BandwidthArg(rate, burst), Values.Bandwidth("--bandwidth", text));
        Assert.Equal(new LimitArgs(Bandwidth: new BandwidthArg(rate, burst)), Command<LimitCommand>("limit", "h", "--bandwidth", text).Limits);
    }

    [Theory]
    [InlineData("1X")]
    [InlineData("1M:2X")]
    [InlineData("1M:")]
    [InlineData(":1M")]
    [InlineData("1M:1M:1M")]
    [InlineData("0")]
    [InlineData("fast")]
    public void Bad_bandwidth_is_named(string text)
    {
        foreach (var args in new[] { new[] { "create", "--bandwidth", text }, ["limit", "h", "--bandwidth", text] })
        {
            var e = Fails(args);
            Assert.Contains("--bandwidth", e.Message);
            Assert.Contains($"'{text}'", e.Message);
        }
    }

    [Theory]
    [InlineData("80", "HOST:CONTAINER")]
    [InlineData("a:b", "HOST:CONTAINER")]
    [InlineData("-1:80", "HOST:CONTAINER")]
    [InlineData("1:2:3", "HOST:CONTAINER")]
    [InlineData(":80", "HOST:CONTAINER")]
    public void Bad_net_in_mappings_are_named(string text, string expected)
    {
        var e = Fails("create", $"--net-in={text}");
        Assert.Contains("--net-in", e.Message);
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Net_in_command()
    {
        var n = Command<NetInCommand>("net-in", "h", "8080:80");
        Assert.Equal(new NetInCommand("h", new PortMappingArg(8080, 80)), n);
        Assert.Equal(new PortMappingArg(0, 65535), Command<NetInCommand>("net-in", "h", "0:65535").Mapping);
        Assert.Contains("missing HOST-PORT:CONTAINER-PORT", Fails("net-in", "h").Message);
        Assert.Contains("missing HANDLE", Fails("net-in").Message);
        Assert.Contains("'extra'", Fails("net-in", "h", "1:2", "extra").Message);
        foreach (var bad in new[] { "80", "a:b", "80:", "99999999999:80" })
        {
            var e = Fails("net-in", "h", bad);
            Assert.Contains($"'{bad}'", e.Message);
            Assert.StartsWith("net-in", e.Message);
        }
    }

    [Fact]
    public void Net_out_with_every_flag()
    {
        var n = Command<NetOutCommand>("net-out", "h", "--network", "10.0.0.0/24", "--network", "192.168.1.10-192.168.1.20",
            "--network=8.8.8.8", "--port", "80", "--port", "8000-8100", "--protocol", "tcp", "--log");
        Assert.Equal("h", n.Handle);
        Assert.Equal(NetProtocol.Tcp, n.Rule.Protocol);
        Assert.Equal([new IpRangeArg("10.0.0.0/24", ""), new IpRangeArg("192.168.1.10", "192.168.1.20"), new IpRangeArg("8.8.8.8", "")],
            n.Rule.Networks);
        Assert.Equal([new PortRangeArg(80, 0), new PortRangeArg(8000, 8100)], n.Rule.Ports);
        Assert.Null(n.Rule.Icmp);
        Assert.True(n.Rule.Log);

        var icmp = Command<NetOutCommand>("net-out", "h", "--protocol", "ICMP", "--icmp-type", "8:0").Rule;
        Assert.Equal((NetProtocol.Icmp, new IcmpArg(8, 0)), (icmp.Protocol, icmp.Icmp));
        Assert.Equal(new IcmpArg(3, -1), Command<NetOutCommand>("net-out", "h", "--protocol", "icmp", "--icmp-type", "3").Rule.Icmp);
        Assert.Equal(NetProtocol.Udp, Command<NetOutCommand>("net-out", "h", "--protocol", "udp", "--port", "53").Rule.Protocol);
        Assert.Equal(new PortRangeArg(1, 65535), Command<NetOutCommand>("net-out", "h", "--protocol", "udp", "--port", "1-65535").Rule.Ports[0]);
        Assert.Equal(new IpRangeArg("10.0.0.1", "10.0.0.1"), Command<NetOutCommand>("net-out", "h", "--network", "10.0.0.1-10.0.0.1").Rule.Networks[0]);
        Assert.Equal(new IpRangeArg("fd00::/64", ""), Command<NetOutCommand>("net-out", "h", "--network", "fd00::/64").Rule.Networks[0]);

        var d = Command<NetOutCommand>("net-out", "h").Rule;
        Assert.Equal(NetProtocol.All, d.Protocol);
        Assert.Empty(d.Networks);
        Assert.Empty(d.Ports);
        Assert.Null(d.Icmp);
        Assert.False(d.Log);
        Assert.Contains("missing HANDLE", Fails("net-out").Message);
    }

    [Theory]
    [InlineData("80-", "P-Q")]
    [InlineData("http", "P-Q")]
    [InlineData("1-2-3", "P-Q")]
    public void Bad_net_out_ports_are_named(string text, string expected)
    {
        var e = Fails("net-out", "h", "--protocol", "tcp", "--port", text);
        Assert.Contains("--port", e.Message);
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("10.0.0.300", "a CIDR")]
    [InlineData("10.0.0", "a CIDR")]
    [InlineData("example.com", "a CIDR")]
    [InlineData("10.0.0.0/", "a CIDR")]
    [InlineData("10.0.0.0/x", "a CIDR")]
    [InlineData("10.0.0.1-", "a CIDR")]
    [InlineData("10.0.0.1-bogus", "a CIDR")]
    [InlineData("", "a CIDR")]
    public void Bad_net_out_networks_are_named(string text, string expected)
    {
        var e = Fails("net-out", "h", "--network", text);
        Assert.Contains("--network", e.Message);
        Assert.Contains($"'{text}'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Net_out_protocol_and_icmp_type_must_read()
    {
        var sctp = Fails("net-out", "h", "--protocol", "sctp");
        Assert.Contains("'sctp'", sctp.Message);
        Assert.Contains("'8:x'", Fails("net-out", "h", "--protocol", "icmp", "--icmp-type", "8:x").Message);
        Assert.Contains("'x'", Fails("net-out", "h", "--protocol", "icmp", "--icmp-type", "x").Message);
        Assert.Equal("net-out", sctp.Command);
    }

    /// <summary>Values that read well go to the daemon as given, even when out of range or inconsistent: its validator is
    /// the one place that judges them (and names the field). The end-to-end tests show it refusing each of these.</summary>
    [Fact]
    public void Values_that_read_well_are_passed_on_for_the_daemon_to_judge()
    {
        Assert.Equal(new PortMappingArg(70000, 0), Command<NetInCommand>("net-in", "h", "70000:0").Mapping);
        Assert.Equal([new PortMappingArg(8080, 70000)], Command<CreateCommand>("create", "--net-in", "8080:70000").NetIn);
        var rule = Command<NetOutCommand>("net-out", "h", "--protocol", "icmp", "--port", "90-80", "--port", "70000",
            "--icmp-type", "256:300", "--network", "10.0.0.0/33", "--network", "10.0.0.9-10.0.0.1", "--network", "10.0.0.1-::1").Rule;
        Assert.Equal([new PortRangeArg(90, 80), new PortRangeArg(70000, 0)], rule.Ports);
        Assert.Equal(new IcmpArg(256, 300), rule.Icmp);
        Assert.Equal([new IpRangeArg("10.0.0.0/33", ""), new IpRangeArg("10.0.0.9", "10.0.0.1"), new IpRangeArg("10.0.0.1", "::1")],
            rule.Networks);
        Assert.Equal(NetProtocol.All, Command<NetOutCommand>("net-out", "h", "--port", "80").Rule.Protocol);
        Assert.Equal(65, Command<SignalCommand>("signal", "h", "p", "65").Signal);
        Assert.Equal(0, Signals.Parse("0"));
        Assert.Equal(new RlimitArg("RLIMIT_BOGUS", 1, 1), Values.Rlimit("--rlimit", "bogus=1"));
        Assert.Equal(TimeSpan.FromDays(99999), Command<GraceTimeCommand>("grace-time", "h", "99999d").GraceTime);
        Assert.Equal(new LimitArgs(Memory: 1024, Disk: 1), Command<LimitCommand>("limit", "h", "--memory", "1K", "--disk", "1").Limits);
    }

    [Fact]
    public void Network_commands_have_usage()
    {
        Assert.Contains("HOST-PORT:CONTAINER-PORT", Usage.For("net-in"));
        Assert.Contains("--icmp-type", Usage.For("net-out"));
        Assert.Contains("--bandwidth", Usage.For("create"));
        Assert.Contains("--net-in", Usage.For("create"));
        Assert.Contains("--bandwidth", Usage.For("limit"));
        Assert.Equal("net-out", Command<HelpCommand>("net-out", "--help").Topic);
    }

    [Fact]
    public void Stream_in_and_out()
    {
        Assert.Equal(new StreamInCommand("h", "/tmp/dest", null), Command<StreamInCommand>("stream-in", "h", "/tmp/dest"));
        Assert.Equal(new StreamInCommand("h", "/d", "vcap"), Command<StreamInCommand>("stream-in", "h", "/d", "--user", "vcap"));
        Assert.Equal(new StreamOutCommand("h", "/etc/", "1000:1000"), Command<StreamOutCommand>("stream-out", "--user=1000:1000", "h", "/etc/"));
        Assert.Equal(new StreamOutCommand("h", "/x", null), Command<StreamOutCommand>("--socket", "/s", "stream-out", "h", "/x"));
        Assert.Contains("missing DEST-DIR", Fails("stream-in", "h").Message);
        Assert.Contains("missing PATH", Fails("stream-out", "h").Message);
        Assert.Contains("missing HANDLE", Fails("stream-out").Message);
        Assert.Contains("'extra'", Fails("stream-in", "h", "/d", "extra").Message);
        Assert.Contains("DEST-DIR is empty", Fails("stream-in", "h", "").Message);
        Assert.Contains("--user", Fails("stream-out", "h", "/x", "--user", "").Message);
        Assert.Contains("'--kill'", Fails("stream-in", "h", "/d", "--kill").Message);
        Assert.Equal("stream-in", Fails("stream-in", "h").Command);
        Assert.Contains("--user", Usage.For("stream-in"));
        Assert.Contains("dir/", Usage.For("stream-out"));
        Assert.Contains("stream-in", Usage.Overview);
        Assert.Equal("stream-out", Command<HelpCommand>("stream-out", "--help").Topic);
    }

    [Fact]
    public void Create_takes_bind_mounts_read_only_by_default_and_a_grace_time()
    {
        var c = Command<CreateCommand>("create", "--bind-mount", "/srv/a:/mnt/a", "--bind-mount", "/srv/b:/mnt/b:rw",
            "--bind-mount=/srv/c:/mnt/c:ro", "--grace-time", "1m30s");
        Assert.Equal([new BindMountArg("/srv/a", "/mnt/a", true), new("/srv/b", "/mnt/b", false), new("/srv/c", "/mnt/c", true)], c.BindMounts);
        Assert.Equal(TimeSpan.FromSeconds(90), c.GraceTime);
        var d = Command<CreateCommand>("create");
        Assert.Empty(d.BindMounts!);
        Assert.Null(d.GraceTime);
        // A relative host path is the caller's: sent absolute.
        Assert.Equal(Path.GetFullPath("data"), Command<CreateCommand>("create", "--bind-mount", "data:/data").BindMounts![0].Source);
    }

    [Theory]
    [InlineData("/a")]
    [InlineData("/a:")]
    [InlineData(":/b")]
    [InlineData("/a:/b:/c")]
    [InlineData("/a:/b:rx")]
    public void Bad_bind_mounts_are_named(string text)
    {
        var e = Fails("create", "--bind-mount", text);
        Assert.Contains("--bind-mount", e.Message);
        Assert.Contains($"'{text}'", e.Message);
    }

    [Theory]
    [InlineData("30s", 30_000)]
    [InlineData("500ms", 500)]
    [InlineData("5m", 300_000)]
    [InlineData("1h30m", 5_400_000)]
    [InlineData("2d", 172_800_000)]
    [InlineData("0", 0)]
    [InlineData("10", 10_000)]
    [InlineData("1.5s", 1_500)]
    public void Durations(string text, long ms) => Assert.Equal(TimeSpan.FromMilliseconds(ms), Values.Duration("--grace-time", text));

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("5x")]
    [InlineData("-1s")]
    [InlineData("1s2")]
    [InlineData("99999999999d")]
    public void Bad_durations_are_named(string text)
    {
        var e = Assert.Throws<UsageException>(() => Values.Duration("--grace-time", text));
        Assert.Contains("--grace-time", e.Message);
        Assert.Contains($"'{text}'", e.Message);
    }

    [Fact]
    public void Grace_time_and_events_commands()
    {
        Assert.Equal(new GraceTimeCommand("h", TimeSpan.FromSeconds(30)), Command<GraceTimeCommand>("grace-time", "h", "30s"));
        Assert.Equal(TimeSpan.Zero, Command<GraceTimeCommand>("grace-time", "h", "0").GraceTime);
        Assert.Contains("missing DURATION", Fails("grace-time", "h").Message);
        Assert.Contains("'soon'", Fails("grace-time", "h", "soon").Message);
        Assert.Null(Command<EventsCommand>("events").Handle);
        Assert.Equal("h", Command<EventsCommand>("events", "h").Handle);
        Assert.True(Parse("events", "--json").Globals.Json);
        Assert.Contains("'x'", Fails("events", "h", "x").Message);
        Assert.Contains("--bind-mount", Usage.For("create"));
        Assert.Contains("--grace-time", Usage.For("create"));
        Assert.Contains("DURATION", Usage.For("grace-time"));
        Assert.Contains("HANDLE", Usage.For("events"));
    }
}
