namespace Garden.Cli.Args;

/// <summary>Turns argv into an <see cref="Invocation"/>. Throws <see cref="UsageException"/> naming what was wrong.</summary>
public static class CommandLineParser
{
    private static readonly FlagSpec Socket = new("--socket", TakesValue: true);
    private static readonly FlagSpec Json = new("--json");
    private static readonly FlagSpec Help = new("--help");
    private static readonly FlagSpec HelpShort = new("-h");
    private static readonly FlagSpec[] GlobalFlags = [Socket, Json, Help, HelpShort];

    public static Invocation Parse(IReadOnlyList<string> args)
    {
        string? socket = null;
        bool json = false;
        int i = 0;

        // Global flags before the command.
        for (; i < args.Count && ArgScanner.IsFlag(args[i]); i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h") return new(new(socket, json), new HelpCommand(null));
            if (arg == "--version") return new(new(socket, json), new VersionCommand());
            if (arg == "--json") { json = true; continue; }
            if (arg == "--socket" || arg.StartsWith("--socket=", StringComparison.Ordinal))
            {
                if (arg.Length > "--socket".Length) socket = arg["--socket=".Length..];
                else if (i + 1 < args.Count && !ArgScanner.IsFlag(args[i + 1])) socket = args[++i];
                else throw new UsageException("flag --socket needs a value");
                continue;
            }
            throw new UsageException($"unknown flag '{FlagName(arg)}'");
        }
        if (i == args.Count)
            throw new UsageException("missing command (run 'garden --help' for the list)");

        var name = args[i];
        var rest = args.Skip(i + 1).ToList();

        if (name == "help")
            return new(new(socket, json), new HelpCommand(rest.FirstOrDefault()));
        if (name == "version")
            return new(new(socket, json), new VersionCommand());
        if (!Usage.Commands.ContainsKey(name))
            throw new UsageException($"unknown command '{name}' (run 'garden --help' for the list)");

        // "--help" anywhere before "--" asks for this command's usage, whatever else is there.
        foreach (var a in rest)
        {
            if (a == "--") break;
            if (a is "--help" or "-h") return new(new(socket, json), new HelpCommand(name));
        }

        var scanned = name switch
        {
            "create" => Scan(name, rest, [new("--handle", true), new("--rootfs", true), new("--env", true, true),
                new("--property", true, true), new("--privileged"), new("--network", true), new("--net-in", true, true),
                new("--bind-mount", true, true), new("--grace-time", true), .. LimitFlags]),
            "limit" => Scan(name, rest, LimitFlags),
            "list" => Scan(name, rest, new FlagSpec("--property", true, true)),
            "stop" => Scan(name, rest, new FlagSpec("--kill")),
            "run" => ArgScanner.Scan(name, rest, [.. GlobalFlags, new("--id", true), new("--user", true), new("--dir", true),
                new("--env", true, true), new("--rlimit", true, true), new("--tty"), new("--detach")],
                positionalsBeforeTrailing: 1),
            "attach" => Scan(name, rest, new FlagSpec("--from", true)),
            "stream-in" or "stream-out" => Scan(name, rest, new FlagSpec("--user", true)),
            "net-out" => Scan(name, rest, new("--network", true, true), new("--port", true, true), new("--protocol", true),
                new("--icmp-type", true), new("--log")),
            _ => Scan(name, rest),
        };

        if (scanned.Value("--socket") is { } s) socket = s;
        json |= scanned.Has("--json");
        var globals = new GlobalOptions(socket, json);

        // Outside run, words after "--" are ordinary positionals (lets a property value start with "-").
        if (name != "run" && scanned.HasTrailing)
            scanned.Positionals.AddRange(scanned.Trailing);

        return new(globals, name switch
        {
            "ping" => NoArgs(name, scanned, new PingCommand()),
            "capacity" => NoArgs(name, scanned, new CapacityCommand()),
            "create" => ParseCreate(scanned),
            "list" => NoArgs(name, scanned, new ListCommand(Properties("--property", scanned.All("--property")))),
            "info" => new InfoCommand(Positionals(name, scanned, "HANDLE")[0]),
            "destroy" => ParseDestroy(scanned),
            "stop" => new StopCommand(Positionals(name, scanned, "HANDLE")[0], scanned.Has("--kill")),
            "run" => ParseRun(scanned),
            "attach" => ParseAttach(scanned),
            "signal" => ParseSignal(scanned),
            "property" => ParseProperty(scanned),
            "limit" => new LimitCommand(Positionals(name, scanned, "HANDLE")[0], ParseLimits(scanned)),
            "metrics" => new MetricsCommand(Positionals(name, scanned, "HANDLE")[0]),
            "net-in" => ParseNetIn(scanned),
            "net-out" => ParseNetOut(scanned),
            "stream-in" => ParseStream(scanned, "DEST-DIR", (h, p, u) => new StreamInCommand(h, p, u)),
            "stream-out" => ParseStream(scanned, "PATH", (h, p, u) => new StreamOutCommand(h, p, u)),
            "grace-time" => ParseGraceTime(scanned),
            "events" => ParseEvents(scanned),
            _ => throw new UsageException($"unknown command '{name}'"),
        });
    }

    private static ScannedArgs Scan(string command, IReadOnlyList<string> args, params FlagSpec[] flags) =>
        ArgScanner.Scan(command, args, [.. GlobalFlags, .. flags]);

    private static string FlagName(string arg)
    {
        int eq = arg.IndexOf('=');
        return eq > 2 ? arg[..eq] : arg;
    }

    private static T NoArgs<T>(string command, ScannedArgs s, T result)
    {
        if (s.Positionals.Count > 0)
            throw new UsageException($"{command}: unexpected argument '{s.Positionals[0]}'", command);
        return result;
    }

    /// <summary>Exactly the named positionals, in order; a missing one or an extra one is an error naming it.</summary>
    private static List<string> Positionals(string command, ScannedArgs s, params string[] names)
    {
        if (s.Positionals.Count < names.Length)
            throw new UsageException($"{command}: missing {names[s.Positionals.Count]}", command);
        if (s.Positionals.Count > names.Length)
            throw new UsageException($"{command}: unexpected argument '{s.Positionals[names.Length]}'", command);
        foreach (var (value, index) in s.Positionals.Select((v, idx) => (v, idx)))
            if (value.Length == 0)
                throw new UsageException($"{command}: {names[index]} is empty", command);
        return s.Positionals;
    }

    private static Dictionary<string, string> Properties(string flag, IEnumerable<string> values)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var v in values)
        {
            var kv = Values.KeyValue(flag, v);
            result[kv.Key] = kv.Value;   // the last one given wins
        }
        return result;
    }

    private static CreateCommand ParseCreate(ScannedArgs s)
    {
        NoArgs("create", s, 0);
        var env = s.All("--env").Select(e => { Values.KeyValue("--env", e); return e; }).ToList();
        var rootfs = s.Value("--rootfs");
        if (rootfs is not null)
        {
            if (rootfs.Length == 0) throw new UsageException("flag --rootfs needs a directory", "create");
            // The daemon resolves paths in its own working directory: send an absolute one.
            if (!rootfs.Contains("://", StringComparison.Ordinal)) rootfs = System.IO.Path.GetFullPath(rootfs);
        }
        // The daemon reads the network (CIDR or IP) and says what is wrong with it; only an empty one is refused here.
        var network = s.Value("--network");
        if (network is { Length: 0 }) throw new UsageException("flag --network needs a CIDR or an IP address", "create");
        var netIn = s.All("--net-in").Select(m => Values.PortMapping("--net-in", m)).ToList();
        // A relative SRC is the caller's (like --rootfs): sent as an absolute path. The daemon checks that it exists.
        var mounts = s.All("--bind-mount").Select(m => Values.BindMount("--bind-mount", m))
            .Select(m => m with { Source = System.IO.Path.GetFullPath(m.Source) }).ToList();
        var grace = s.Value("--grace-time") is { } g ? Values.Duration("--grace-time", g) : (TimeSpan?)null;
        return new CreateCommand(s.Value("--handle"), rootfs, env, Properties("--property", s.All("--property")),
            s.Has("--privileged"), ParseLimits(s), network, netIn, mounts, grace);
    }

    private static GraceTimeCommand ParseGraceTime(ScannedArgs s)
    {
        var p = Positionals("grace-time", s, "HANDLE", "DURATION");
        return new GraceTimeCommand(p[0], Values.Duration("grace-time", p[1], "DURATION"));
    }

    private static EventsCommand ParseEvents(ScannedArgs s)
    {
        if (s.Positionals.Count > 1)
            throw new UsageException($"events: unexpected argument '{s.Positionals[1]}'", "events");
        if (s.Positionals.Count == 1 && s.Positionals[0].Length == 0) throw new UsageException("events: HANDLE is empty", "events");
        return new EventsCommand(s.Positionals.Count == 1 ? s.Positionals[0] : null);
    }

    private static readonly FlagSpec[] LimitFlags =
        [new("--memory", true), new("--cpu-weight", true), new("--cpu-quota", true), new("--pids", true), new("--disk", true),
            new("--bandwidth", true)];

    private static LimitArgs ParseLimits(ScannedArgs s) => new(
        s.Value("--memory") is { } m ? Values.Size("--memory", m) : null,
        s.Value("--cpu-weight") is { } w ? Values.Positive("--cpu-weight", w) : null,
        s.Value("--cpu-quota") is { } q ? Values.Cpus("--cpu-quota", q) : null,
        s.Value("--pids") is { } p ? Values.Positive("--pids", p) : null,
        s.Value("--disk") is { } d ? Values.Size("--disk", d) : null,
        s.Value("--bandwidth") is { } b ? Values.Bandwidth("--bandwidth", b) : null);

    private static NetInCommand ParseNetIn(ScannedArgs s)
    {
        var p = Positionals("net-in", s, "HANDLE", "HOST-PORT:CONTAINER-PORT");
        return new NetInCommand(p[0], Values.PortMapping("net-in", p[1], "HOST-PORT:CONTAINER-PORT"));
    }

    /// <summary>One rule from the flags. Ports only go with tcp/udp and an icmp type only with icmp, as the daemon requires.</summary>
    private static NetOutCommand ParseNetOut(ScannedArgs s)
    {
        var handle = Positionals("net-out", s, "HANDLE")[0];
        var protocolText = s.Value("--protocol");
        var protocol = protocolText is null ? NetProtocol.All : Values.Protocol("--protocol", protocolText);
        var protocolName = protocolText is null ? "all (the default)" : protocolText;
        var networks = s.All("--network").Select(n => Values.IpRange("--network", n)).ToList();
        var ports = s.All("--port").Select(p => Values.PortRange("--port", p)).ToList();
        if (ports.Count > 0 && protocol is not (NetProtocol.Tcp or NetProtocol.Udp))
            throw new UsageException($"net-out: --port {s.All("--port")[0]} needs --protocol tcp or udp, not {protocolName}", "net-out");
        IcmpArg? icmp = null;
        if (s.Value("--icmp-type") is { } icmpText)
        {
            if (protocol != NetProtocol.Icmp)
                throw new UsageException($"net-out: --icmp-type {icmpText} needs --protocol icmp, not {protocolName}", "net-out");
            icmp = Values.Icmp("--icmp-type", icmpText);
        }
        return new NetOutCommand(handle, new NetOutRuleArg(protocol, networks, ports, icmp, s.Has("--log")));
    }

    private static DestroyCommand ParseDestroy(ScannedArgs s)
    {
        if (s.Positionals.Count == 0) throw new UsageException("destroy: missing HANDLE", "destroy");
        if (s.Positionals.Any(h => h.Length == 0)) throw new UsageException("destroy: HANDLE is empty", "destroy");
        return new DestroyCommand(s.Positionals);
    }

    private static RunCommand ParseRun(ScannedArgs s)
    {
        if (s.Positionals.Count == 0) throw new UsageException("run: missing HANDLE", "run");
        if (s.Positionals[0].Length == 0) throw new UsageException("run: HANDLE is empty", "run");
        if (s.Trailing.Count == 0 || s.Trailing[0].Length == 0)
            throw new UsageException("run: missing the command to run (garden run HANDLE [flags] -- CMD [ARGS...])", "run");
        var env = s.All("--env").Select(e => { Values.KeyValue("--env", e); return e; }).ToList();
        var rlimits = s.All("--rlimit").Select(r => Values.Rlimit("--rlimit", r)).ToList();
        return new RunCommand(s.Positionals[0], s.Value("--id"), s.Value("--user"), s.Value("--dir"), env, rlimits,
            s.Has("--tty"), s.Has("--detach"), s.Trailing[0], s.Trailing.Skip(1).ToList());
    }

    private static CliCommand ParseStream(ScannedArgs s, string pathName, Func<string, string, string?, CliCommand> make)
    {
        var name = pathName == "PATH" ? "stream-out" : "stream-in";
        var p = Positionals(name, s, "HANDLE", pathName);
        var user = s.Value("--user");
        if (user is { Length: 0 }) throw new UsageException($"{name}: flag --user needs a user name or uid[:gid]", name);
        return make(p[0], p[1], user);
    }

    private static AttachCommand ParseAttach(ScannedArgs s)
    {
        var p = Positionals("attach", s, "HANDLE", "PROCESS-ID");
        ulong from = s.Value("--from") is { } f ? Values.UInt64("--from", f) : 0;
        return new AttachCommand(p[0], p[1], from);
    }

    private static SignalCommand ParseSignal(ScannedArgs s)
    {
        var p = Positionals("signal", s, "HANDLE", "PROCESS-ID", "SIGNAL");
        try { return new SignalCommand(p[0], p[1], Signals.Parse(p[2])); }
        catch (UsageException e) { throw new UsageException("signal: " + e.Message, "signal"); }
    }

    private static PropertyCommand ParseProperty(ScannedArgs s)
    {
        var p = s.Positionals;
        if (p.Count == 0) throw new UsageException("property: missing HANDLE", "property");
        if (p[0].Length == 0) throw new UsageException("property: HANDLE is empty", "property");
        if (p.Count == 1) return new PropertyCommand(p[0], PropertyAction.List);
        var (action, names) = p[1] switch
        {
            "get" => (PropertyAction.Get, new[] { "HANDLE", "get", "KEY" }),
            "set" => (PropertyAction.Set, new[] { "HANDLE", "set", "KEY", "VALUE" }),
            "rm" => (PropertyAction.Remove, new[] { "HANDLE", "rm", "KEY" }),
            _ => throw new UsageException($"property: unknown action '{p[1]}' (get KEY | set KEY VALUE | rm KEY)", "property"),
        };
        if (p.Count < names.Length)
            throw new UsageException($"property {p[1]}: missing {names[p.Count]}", "property");
        if (p.Count > names.Length)
            throw new UsageException($"property {p[1]}: unexpected argument '{p[names.Length]}'", "property");
        if (p[2].Length == 0) throw new UsageException($"property {p[1]}: KEY is empty", "property");
        return new PropertyCommand(p[0], action, p[2], action == PropertyAction.Set ? p[3] : null);
    }
}
