using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;

namespace Garden.Cli.Args;

/// <summary>A garden command: its arguments and flags are declared on it (System.CommandLine), and <see cref="Bind"/>
/// reads a parse of it into the plain record its handler takes.</summary>
public sealed class GardenCommand(string name, string description, Func<ParseResult, CliCommand> bind) : Command(name, description)
{
    public CliCommand Bind(ParseResult result) => bind(result);

    public GardenCommand With(IEnumerable<Option> options)
    {
        foreach (var option in options) Add(option);
        return this;
    }
}

/// <summary>garden's command line, declared once: every command with its arguments and flags, each with its help and its
/// value parser (<see cref="Values"/>). <see cref="CommandLineParser"/> parses with it, <see cref="Usage"/> prints its help.</summary>
public static class Syntax
{
    /// <summary>Given more than once, the last one wins (a wrapper's --socket can be overridden).</summary>
    public static readonly Option<string?> Socket = new("--socket")
    {
        HelpName = "ADDRESS",
        Recursive = true,
        Arity = ArgumentArity.OneOrMore,
        CustomParser = r => r.Tokens.Count == 0 ? null : r.Tokens[^1].Value,
        Description = "gardend's address: a socket path, unix:///PATH, tcp://HOST:PORT, or akka.tcp://garden@HOST:PORT (gardend " +
                      $"--akka-remote); default: ${GardenAddress.EnvironmentVariable}, else {GardenAddress.DefaultSocket}",
    };

    public static readonly Option<bool> Json = Switch("--json",
        "print responses as JSON (protobuf JSON mapping), nothing for an empty answer; run/attach: one JSON object per " +
        "process event instead of the raw output", recursive: true);

    public static readonly HelpOption Help = new("--help", "-h")
    {
        Recursive = true,
        Description = "this help; 'garden COMMAND --help' for one command",
        Action = new HelpAction { MaxWidth = 110 },
    };

    public static readonly Option<bool> Version = Switch("--version", "print garden's version");

    public static readonly Command Root = new("garden",
        "The command-line client of gardend. Flags go before or after the command.\n" +
        "Exit codes: 0 success, 1 error (the daemon's message on stderr), 2 bad usage. run and attach exit with the\n" +
        "process's exit code (128+N when killed by signal N), and with 125 when garden itself failed.")
    {
        Socket, Json, Help, Version,
        Ping(), Capacity(), Create(), List(), Info(), Destroy(), Stop(), Run(), Attach(), Signal(), Property(), Limit(), Metrics(),
        NetIn(), NetOut(), StreamIn(), StreamOut(), GraceTime(), Events(), HelpCommand(), VersionCommand(),
    };

    private static GardenCommand Ping() => new("ping", "check that gardend answers; print its version",
        _ => new PingCommand());

    private static GardenCommand Capacity() => new("capacity",
        "show the host's memory and disk bytes and the most containers", _ => new CapacityCommand());

    private static GardenCommand Create()
    {
        var handle = Text("--handle", "H", "the container's handle (default: generated)");
        var rootfs = Flag<string?>("--rootfs", "DIR", "the root filesystem, a directory (default: the built-in busybox rootfs)",
            (flag, text) => text.Length == 0 ? throw new UsageException($"flag {flag} needs a directory")
                // the daemon resolves paths in its own working directory: send an absolute one
                : text.Contains("://", StringComparison.Ordinal) ? text : Path.GetFullPath(text));
        var image = Flag<string?>("--image", "REF",
            "an image: docker://HOST[:PORT]/NAME[:TAG|@DIGEST], oci:///LAYOUT[:TAG], oci-archive:///FILE.tar[:TAG], docker-archive:///FILE.tar[:NAME:TAG]",
            (flag, text) => text.Length == 0 ? throw new UsageException($"flag {flag} needs an image reference")
                : text.Contains("://", StringComparison.Ordinal) ? text : Path.GetFullPath(text));
        var env = Many("--env", "K=V", "an environment variable of every process", EnvironmentVariable);
        var properties = Many("--property", "K=V", "a property (the last one given for a K wins)", Values.KeyValue);
        var privileged = Switch("--privileged", "container root is host root: no user namespace");
        var network = Flag<string?>("--network", "CIDR", "a CIDR or an IP for the container (default: a /30 from the daemon's pool)",
            (flag, text) => text.Length == 0 ? throw new UsageException($"flag {flag} needs a CIDR or an IP address") : text);
        var netIn = Many("--net-in", "HOST:CONTAINER", "forward host port HOST (0 = one from the pool) to the container's port CONTAINER",
            (flag, text) => Values.PortMapping(flag, text));
        var mounts = Many("--bind-mount", "SRC:DST[:ro|rw]",
            "mount host path SRC (must exist) at DST in the container, read-only unless :rw",
            // a relative SRC is the caller's (like --rootfs): sent absolute; the daemon checks that it exists
            (flag, text) =>
            {
                var mount = Values.BindMount(flag, text);
                return mount with { Source = Path.GetFullPath(mount.Source) };
            });
        var grace = Flag<TimeSpan?>("--grace-time", "DURATION",
            "destroy the container once it has been idle this long (no request, nobody attached to a process): 30s, 5m, 1h30m; " +
            "0 = never; default: the daemon's garden.default-grace-time", (flag, text) => Values.Duration(flag, text));
        var limits = new LimitFlags();
        return new GardenCommand("create", "create a container, print its handle",
            r => new CreateCommand(r.GetValue(handle), r.GetValue(rootfs), r.GetValue(env) ?? [],
                Properties(r.GetValue(properties)), r.GetValue(privileged), limits.Read(r), r.GetValue(network),
                r.GetValue(netIn) ?? [], r.GetValue(mounts) ?? [], r.GetValue(grace), r.GetValue(image)))
        {
            handle, rootfs, image, env, properties, privileged, network, netIn, mounts, grace,
        }.With(limits.All);
    }

    private static GardenCommand List()
    {
        var properties = Many("--property", "K=V", "only containers having this property", Values.KeyValue);
        return new("list", "print the handles of the containers having every given property",
            r => new ListCommand(Properties(r.GetValue(properties)))) { properties };
    }

    private static GardenCommand Info()
    {
        var handle = Word("HANDLE");
        return new("info", "show a container: state, network, ports, limits, processes, properties, events",
            r => new InfoCommand(r.GetValue(handle)!)) { handle };
    }

    private static GardenCommand Destroy()
    {
        var handles = new Argument<List<string>>("HANDLE")
        {
            Arity = ArgumentArity.OneOrMore,
            Description = "the containers to destroy",
            CustomParser = r => [.. r.Tokens.Select(t => NonEmpty(r, "HANDLE", t.Value))],
        };
        return new("destroy", "destroy containers (each failure is reported; exit 1 if any failed)",
            r => new DestroyCommand(r.GetValue(handles)!)) { handles };
    }

    private static GardenCommand Stop()
    {
        var handle = Word("HANDLE");
        var kill = Switch("--kill", "KILL at once");
        return new("stop", "stop a container's processes (TERM, KILL after 10 s); the container stays",
            r => new StopCommand(r.GetValue(handle)!, r.GetValue(kill))) { handle, kill };
    }

    private static GardenCommand Run()
    {
        var handle = Word("HANDLE");
        var command = new Argument<List<string>>("CMD")
        {
            Arity = ArgumentArity.ZeroOrMore,
            HelpName = "CMD [ARGS...]",
            Description = "what to run: after '--', or from the first word after HANDLE that is not a flag of run (its own " +
                          "flags stay its own). Stdin passes through, stdout and stderr stream; with --json, one JSON object " +
                          "per process event instead",
        };
        var id = Text("--id", "ID", "the process id (default: generated)");
        var user = Text("--user", "U", "run as U: a name or uid[:gid] (default: root)");
        var dir = Text("--dir", "D", "the working directory (default: the user's home)");
        var env = Many("--env", "K=V", "an environment variable of the process", EnvironmentVariable);
        var rlimits = Many("--rlimit", "NAME=N|NAME=SOFT:HARD", "a resource limit: nofile, nproc, core, ...; N may be 'unlimited'",
            Values.Rlimit);
        var tty = Switch("--tty", "a terminal: raw mode while the process runs, and its window size follows ours");
        var detach = Switch("--detach", "print the process id and return at once");
        var image = Text("--image", "DIR", "run it as a pea: in a root of its own, an overlay of this host directory, sharing " +
            "the container's other namespaces (network, pid, user, ipc, uts) and, unless --pea-memory, its limits");
        var peaMemory = Flag<ulong?>("--pea-memory", "SIZE", "with --image: a cgroup of the pea's own, inside the container's, " +
            "with this memory limit", (flag, text) => Values.Size(flag, text));
        return new GardenCommand("run", "run a process, stream its output, exit with its exit code", r =>
        {
            var words = r.GetValue(command) ?? [];
            if (words.Count == 0 || words[0].Length == 0)
                throw new UsageException("run: missing the command to run (garden run HANDLE [flags] -- CMD [ARGS...])");
            return new RunCommand(r.GetValue(handle)!, r.GetValue(id), r.GetValue(user), r.GetValue(dir), r.GetValue(env) ?? [],
                r.GetValue(rlimits) ?? [], r.GetValue(tty), r.GetValue(detach), words[0], words[1..])
            {
                Image = r.GetValue(image),
                PeaMemory = r.GetValue(peaMemory),
            };
        })
        {
            handle, command, id, user, dir, env, rlimits, tty, detach, image, peaMemory,
        };
    }

    private static GardenCommand Attach()
    {
        var handle = Word("HANDLE");
        var process = Word("PROCESS-ID");
        var from = Flag<ulong>("--from", "OFFSET", "start at this byte of the output (default 0)", Values.UInt64);
        return new("attach", "reattach to a process's output, forward stdin, exit with its exit code",
            r => new AttachCommand(r.GetValue(handle)!, r.GetValue(process)!, r.GetValue(from))) { handle, process, from };
    }

    private static GardenCommand Signal()
    {
        var handle = Word("HANDLE");
        var process = Word("PROCESS-ID");
        var signal = new Argument<int>("SIGNAL")
        {
            Description = "a number, or a name such as TERM, SIGKILL, hup",
            CustomParser = r => Read(r, "signal", (_, text) => Signals.Parse(text), error => "signal: " + error),
        };
        return new("signal", "signal a process",
            r => new SignalCommand(r.GetValue(handle)!, r.GetValue(process)!, r.GetValue(signal))) { handle, process, signal };
    }

    private static GardenCommand Property()
    {
        var handle = Word("HANDLE");
        var action = new Argument<List<string>>("ACTION")
        {
            Arity = ArgumentArity.ZeroOrMore,
            HelpName = "get KEY | set KEY VALUE | rm KEY",
            Description = "without an action, every property is printed as KEY=VALUE, one a line",
        };
        return new("property", "list or change a container's properties",
            r => ReadProperty(r.GetValue(handle)!, r.GetValue(action) ?? [])) { handle, action };
    }

    private static GardenCommand Limit()
    {
        var handle = Word("HANDLE");
        var limits = new LimitFlags();
        return new GardenCommand("limit", "change a running container's limits (the disk only grows); print the limits in force",
            r => new LimitCommand(r.GetValue(handle)!, limits.Read(r))) { handle }.With(limits.All);
    }

    private static GardenCommand Metrics()
    {
        var handle = Word("HANDLE");
        return new("metrics", "show resource usage: memory, cpu, pids, disk, network, age",
            r => new MetricsCommand(r.GetValue(handle)!)) { handle };
    }

    private static GardenCommand NetIn()
    {
        var handle = Word("HANDLE");
        const string form = "HOST-PORT:CONTAINER-PORT";
        var mapping = new Argument<PortMappingArg>(form)
        {
            Description = "forward HOST-PORT on the host (0 = one from the daemon's pool) to CONTAINER-PORT in the container",
            CustomParser = r => Read(r, "net-in", (flag, text) => Values.PortMapping(flag, text, form)),
        };
        return new("net-in", "forward a host port to the container; print the mapping in force",
            r => new NetInCommand(r.GetValue(handle)!, r.GetValue(mapping)!)) { handle, mapping };
    }

    private static GardenCommand NetOut()
    {
        var handle = Word("HANDLE");
        var networks = Many("--network", "CIDR|IP|A-B", "where the container may connect (none: anywhere)", Values.IpRange);
        var ports = Many("--port", "P|P-Q", "which ports (needs --protocol tcp or udp; none: every port)", Values.PortRange);
        var protocol = Flag<NetProtocol>("--protocol", "all|tcp|udp|icmp", "the protocol (default all)", Values.Protocol);
        var icmp = Flag<IcmpArg?>("--icmp-type", "TYPE[:CODE]",
            "which ICMP type (needs --protocol icmp; none: every type; no CODE: every code)", (flag, text) => Values.Icmp(flag, text));
        var log = Switch("--log", "log each connection the rule allows");
        return new("net-out", "allow outbound traffic that one rule names",
            r => new NetOutCommand(r.GetValue(handle)!, new NetOutRuleArg(r.GetValue(protocol), r.GetValue(networks) ?? [],
                r.GetValue(ports) ?? [], r.GetValue(icmp), r.GetValue(log))))
        {
            handle, networks, ports, protocol, icmp, log,
        };
    }

    private static GardenCommand StreamIn()
    {
        var handle = Word("HANDLE");
        var dest = Word("DEST-DIR", "where to extract the tar on stdin (created if missing). Modes, symlinks and, as root, owners are " +
                                    "kept; hard links become copies. Entries with absolute names or '..', or that go through a symlink, " +
                                    "are refused");
        var user = StreamUser();
        return new("stream-in", "extract a tar into the container: garden stream-in HANDLE DEST-DIR < x.tar",
            r => new StreamInCommand(r.GetValue(handle)!, r.GetValue(dest)!, r.GetValue(user))) { handle, dest, user };
    }

    private static GardenCommand StreamOut()
    {
        var handle = Word("HANDLE");
        var path = Word("PATH", "'dir' gives dir/ and everything in it, 'dir/' only what is in it. Symlinks are kept, never followed");
        var user = StreamUser();
        return new("stream-out", "tar a file or directory of the container: garden stream-out HANDLE PATH > x.tar",
            r => new StreamOutCommand(r.GetValue(handle)!, r.GetValue(path)!, r.GetValue(user))) { handle, path, user };
    }

    private static Option<string?> StreamUser() => Flag<string?>("--user", "U", "as user U: a name or uid[:gid] (default: root)",
        (flag, text) => text.Length == 0 ? throw new UsageException($"flag {flag} needs a user name or uid[:gid]") : text);

    private static GardenCommand GraceTime()
    {
        var handle = Word("HANDLE");
        var duration = new Argument<TimeSpan>("DURATION")
        {
            Description = "30s, 5m, 1h30m; 0 = never. The timer starts afresh now, restarts with every request and pauses " +
                          "while a client is attached to a process",
            CustomParser = r => Read(r, "grace-time", (flag, text) => Values.Duration(flag, text, "DURATION")),
        };
        return new("grace-time", "destroy the container once it has been idle that long",
            r => new GraceTimeCommand(r.GetValue(handle)!, r.GetValue(duration))) { handle, duration };
    }

    private static GardenCommand Events()
    {
        var handle = Word("HANDLE", "only this container's events (default: every container's): created, destroyed, stopped, " +
                                    "out of memory, process exited, reaped by grace time, reattached, broken");
        handle.Arity = ArgumentArity.ZeroOrOne;
        return new("events", "follow container and process events, one a line, until interrupted",
            r => new EventsCommand(r.GetValue(handle))) { handle };
    }

    private static GardenCommand HelpCommand()
    {
        var topic = new Argument<string?>("COMMAND") { Arity = ArgumentArity.ZeroOrOne };
        return new("help", "print this help, or a command's", r => new HelpCommand(r.GetValue(topic))) { topic };
    }

    private static GardenCommand VersionCommand() => new("version",
        "print garden's version and gardend's (asked over the API; exit 1, after garden's, when gardend does not answer)",
        _ => new VersionCommand(Server: true));

    /// <summary>The resource flags of create and limit.</summary>
    private sealed class LimitFlags
    {
        public readonly Option<ulong?> Memory = Flag<ulong?>("--memory", "SIZE", "memory limit: 64M, 1G (K, M, G, T: powers of 1024)",
            (flag, text) => Values.Size(flag, text));
        public readonly Option<ulong?> CpuWeight = Flag<ulong?>("--cpu-weight", "N", "relative cpu weight",
            (flag, text) => Values.Positive(flag, text));
        public readonly Option<double?> CpuQuota = Flag<double?>("--cpu-quota", "CPUS", "cpu limit in CPUs (0.5 = half of one CPU)",
            (flag, text) => Values.Cpus(flag, text));
        public readonly Option<ulong?> Pids = Flag<ulong?>("--pids", "N", "most processes at once", (flag, text) => Values.Positive(flag, text));
        public readonly Option<ulong?> Disk = Flag<ulong?>("--disk", "SIZE", "disk limit: 1G", (flag, text) => Values.Size(flag, text));
        public readonly Option<BandwidthArg?> Bandwidth = Flag<BandwidthArg?>("--bandwidth", "RATE[:BURST]",
            "network limit: RATE in bytes per second and BURST in bytes, both sizes (1M:256K); no BURST = the daemon's default",
            (flag, text) => Values.Bandwidth(flag, text));

        public Option[] All => [Memory, CpuWeight, CpuQuota, Pids, Disk, Bandwidth];

        public LimitArgs Read(ParseResult r) =>
            new(r.GetValue(Memory), r.GetValue(CpuWeight), r.GetValue(CpuQuota), r.GetValue(Pids), r.GetValue(Disk), r.GetValue(Bandwidth));
    }

    // ---- how flags and arguments are declared ----

    private static Option<bool> Switch(string name, string description, bool recursive = false) =>
        new(name) { Arity = ArgumentArity.Zero, Description = description, Recursive = recursive };

    private static Option<string?> Text(string name, string helpName, string description) =>
        new(name) { HelpName = helpName, Description = description };

    /// <summary>A flag taking one value, read by <paramref name="parse"/>(flag, text), which throws <see cref="UsageException"/>.</summary>
    private static Option<T> Flag<T>(string name, string helpName, string description, Func<string, string, T> parse) => new(name)
    {
        HelpName = helpName,
        Description = description,
        CustomParser = r => Read(r, name, parse),
    };

    /// <summary>A flag that may be given again and again, one value each time.</summary>
    private static Option<List<T>> Many<T>(string name, string helpName, string description, Func<string, string, T> parse) => new(name)
    {
        HelpName = helpName,
        Description = description + " (repeatable)",
        Arity = ArgumentArity.OneOrMore,
        CustomParser = r => [.. r.Tokens.Select(t => ReadText(r, t.Value, name, parse))],
    };

    /// <summary>A positional that must not be empty.</summary>
    private static Argument<string?> Word(string name, string? description = null) => new(name)
    {
        Description = description,
        CustomParser = r => r.Tokens.Count == 0 ? null : NonEmpty(r, name, r.Tokens[0].Value),
    };

    private static string NonEmpty(ArgumentResult r, string name, string value)
    {
        if (value.Length == 0) r.AddError($"{CommandName(r)}: {name} is empty");
        return value;
    }

    private static T Read<T>(ArgumentResult r, string name, Func<string, string, T> parse, Func<string, string>? message = null) =>
        r.Tokens.Count == 0 ? default! : ReadText(r, r.Tokens[^1].Value, name, parse, message);

    private static T ReadText<T>(ArgumentResult r, string text, string name, Func<string, string, T> parse, Func<string, string>? message = null)
    {
        try
        {
            return parse(name, text);
        }
        catch (UsageException e)
        {
            r.AddError(message is null ? e.Message : message(e.Message));
            return default!;
        }
    }

    private static string CommandName(SymbolResult? r)
    {
        for (; r is not null; r = r.Parent)
            if (r is CommandResult c) return c.Command.Name;
        return "garden";
    }

    private static string EnvironmentVariable(string flag, string text)
    {
        Values.KeyValue(flag, text);
        return text;
    }

    private static Dictionary<string, string> Properties(List<KeyValuePair<string, string>>? pairs)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in pairs ?? []) result[key] = value;   // the last one given wins
        return result;
    }

    private static PropertyCommand ReadProperty(string handle, List<string> words)
    {
        if (words.Count == 0) return new PropertyCommand(handle, PropertyAction.List);
        var (action, names) = words[0] switch
        {
            "get" => (PropertyAction.Get, new[] { "get", "KEY" }),
            "set" => (PropertyAction.Set, new[] { "set", "KEY", "VALUE" }),
            "rm" => (PropertyAction.Remove, new[] { "rm", "KEY" }),
            _ => throw new UsageException($"property: unknown action '{words[0]}' (get KEY | set KEY VALUE | rm KEY)"),
        };
        if (words.Count < names.Length) throw new UsageException($"property {words[0]}: missing {names[words.Count]}");
        if (words.Count > names.Length) throw new UsageException($"property {words[0]}: unexpected argument '{words[names.Length]}'");
        if (words[1].Length == 0) throw new UsageException($"property {words[0]}: KEY is empty");
        return new PropertyCommand(handle, action, words[1], action == PropertyAction.Set ? words[2] : null);
    }
}
