namespace Garden.Cli.Args;

/// <summary>Help text: the overview and one usage block per command.</summary>
public static class Usage
{
    public static readonly IReadOnlyDictionary<string, string> Commands = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["ping"] = "garden ping\n  Checks that gardend answers; prints its version (or \"ok\").",
        ["capacity"] = "garden capacity\n  Prints the host's memory and disk bytes and the maximum number of containers.",
        ["create"] = "garden create [--handle H] [--rootfs DIR] [--env K=V]... [--property K=V]... [--privileged]\n" +
                     "              [--memory 64M] [--cpu-weight N] [--cpu-quota 0.5] [--pids N] [--disk 1G]\n" +
                     "              [--bandwidth RATE[:BURST]] [--network CIDR] [--net-in HOST:CONTAINER]...\n" +
                     "              [--bind-mount SRC:DST[:ro|rw]]... [--grace-time 30s]\n" +
                     "  Creates a container and prints its handle (generated when --handle is not given).\n" +
                     "  Sizes take K, M, G, T (powers of 1024); --cpu-quota is in CPUs (0.5 = half of one CPU).\n" +
                     "  --bandwidth: RATE in bytes per second and BURST in bytes, both sizes (1M:256K); no BURST = the\n" +
                     "  daemon's default. --network: a CIDR or an IP (default: a /30 from the daemon's pool).\n" +
                     "  --net-in: forward host port HOST (0 = one from the pool) to the container's port CONTAINER.\n" +
                     "  --bind-mount: mount host path SRC (must exist) at DST in the container, read-only unless :rw.\n" +
                     "  --grace-time: destroy the container once it has been idle this long (no request, nobody attached\n" +
                     "  to a process); 0 = never; default: the daemon's garden.default-grace-time.",
        ["limit"] = "garden limit HANDLE [--memory 64M] [--cpu-weight N] [--cpu-quota 0.5] [--pids N] [--disk 1G]\n" +
                    "                    [--bandwidth RATE[:BURST]]\n" +
                    "  Changes the given limits of a running container (the disk only grows) and prints the limits in force.",
        ["metrics"] = "garden metrics HANDLE\n  Prints memory, cpu, pids, disk and network usage and the container's age.",
        ["net-in"] = "garden net-in HANDLE HOST-PORT:CONTAINER-PORT\n" +
                     "  Forwards HOST-PORT on the host (0 = one from the daemon's pool) to CONTAINER-PORT in the container\n" +
                     "  and prints the mapping in force as HOST-PORT:CONTAINER-PORT.",
        ["net-out"] = "garden net-out HANDLE [--network CIDR|IP|A-B]... [--port P|P-Q]... [--protocol all|tcp|udp|icmp]\n" +
                      "                      [--icmp-type TYPE[:CODE]] [--log]\n" +
                      "  Allows the container to reach what one rule names: no --network = anywhere, no --port = every\n" +
                      "  port (ports need --protocol tcp or udp), no --icmp-type = every type (needs --protocol icmp;\n" +
                      "  no CODE = every code). --protocol defaults to all; --log logs each connection the rule allows.",
        ["list"] = "garden list [--property K=V]...\n  Prints the handles of the containers having all the given properties, one a line.",
        ["info"] = "garden info HANDLE\n  Prints a container's state, path, network, mapped ports, processes, properties and events.",
        ["destroy"] = "garden destroy HANDLE...\n  Destroys each container; reports each failure and exits non-zero if any failed.",
        ["stop"] = "garden stop HANDLE [--kill]\n  Stops every process (TERM, then KILL after 10 s; --kill: KILL at once). The container stays.",
        ["run"] = "garden run HANDLE [--id ID] [--user U] [--dir D] [--env K=V]... [--rlimit NAME=N|NAME=SOFT:HARD]...\n" +
                  "           [--tty] [--detach] -- CMD [ARGS...]\n" +
                  "  Runs CMD in the container. Stdin passes through, stdout and stderr stream, and garden exits with\n" +
                  "  the process's exit code. --detach prints the process id and returns at once.\n" +
                  "  --rlimit NAME is nofile, nproc, core, ... ('unlimited' allowed). With --json, each process event\n" +
                  "  is printed as one JSON object a line instead of the raw output.",
        ["attach"] = "garden attach HANDLE PROCESS-ID [--from OFFSET]\n" +
                     "  Reattaches to a process's output (from byte OFFSET), forwards stdin, exits with its exit code.",
        ["signal"] = "garden signal HANDLE PROCESS-ID SIGNAL\n  Sends SIGNAL (a number, or a name such as TERM, SIGKILL, hup) to a process.",
        ["stream-in"] = "garden stream-in HANDLE DEST-DIR [--user U] < archive.tar\n" +
                        "  Extracts the tar on stdin into DEST-DIR of the container (created if missing) as user U (name or\n" +
                        "  uid[:gid]; default root). Modes, symlinks and, as root, owners are kept; hard links become copies.\n" +
                        "  Entries with absolute names or '..', or that go through a symlink, are refused.",
        ["stream-out"] = "garden stream-out HANDLE PATH [--user U] > archive.tar\n" +
                         "  Writes a tar of PATH of the container to stdout, read as user U (default root): PATH 'dir'\n" +
                         "  gives dir/ and everything in it, 'dir/' only what is in it. Symlinks are kept, never followed.",
        ["property"] = "garden property HANDLE [get KEY | set KEY VALUE | rm KEY]\n" +
                       "  Without an action, prints every property as KEY=VALUE, one a line.",
        ["grace-time"] = "garden grace-time HANDLE DURATION\n" +
                         "  Destroys the container once it has been idle for DURATION (30s, 5m, 1h30m; 0 = never). The timer\n" +
                         "  starts afresh now, restarts with every request and pauses while a client is attached to a process.",
        ["events"] = "garden events [HANDLE]\n" +
                     "  Prints container and process events as they happen (of every container, or of HANDLE), one a line:\n" +
                     "  created, destroyed, stopped, out of memory, process exited, reaped by grace time, reattached, broken.\n" +
                     "  Runs until interrupted. With --json, one JSON object a line.",
    };

    public const string Overview =
        "Usage: garden [--socket ADDRESS] [--json] COMMAND [ARGS...]\n" +
        "\n" +
        "Commands:\n" +
        "  ping                                   check that gardend answers\n" +
        "  capacity                               host memory, disk and container limits\n" +
        "  create [flags]                         create a container, print its handle\n" +
        "  list [--property K=V]...               list container handles\n" +
        "  info HANDLE                            show a container\n" +
        "  destroy HANDLE...                      destroy containers\n" +
        "  stop HANDLE [--kill]                   stop a container's processes\n" +
        "  run HANDLE [flags] -- CMD [ARGS...]    run a process, stream its output, exit with its code\n" +
        "  attach HANDLE PROCESS-ID [--from N]    reattach to a process\n" +
        "  signal HANDLE PROCESS-ID SIGNAL        signal a process\n" +
        "  property HANDLE [get K|set K V|rm K]   list or change properties\n" +
        "  limit HANDLE [flags]                   change or show resource limits\n" +
        "  metrics HANDLE                         show resource usage\n" +
        "  net-in HANDLE HOST:CONTAINER           forward a host port to the container\n" +
        "  net-out HANDLE [flags]                 allow outbound traffic\n" +
        "  stream-in HANDLE DEST-DIR < x.tar      extract a tar into the container\n" +
        "  stream-out HANDLE PATH > x.tar         tar a file or directory of the container\n" +
        "  grace-time HANDLE DURATION             destroy the container after it is idle that long\n" +
        "  events [HANDLE]                        follow container and process events\n" +
        "\n" +
        "Global flags (before or after the command):\n" +
        "  --socket ADDRESS   gardend's address: a socket path, unix:///path or tcp://host:port,\n" +
        "                     or akka.tcp://garden@host:port for Akka.Remote (gardend --akka-remote)\n" +
        "                     (default: $GARDEN_ADDRESS, else " + GardenAddress.DefaultSocket + ")\n" +
        "  --json             print responses as JSON (protobuf JSON mapping); for run/attach,\n" +
        "                     one JSON object per process event instead of the raw output;\n" +
        "                     commands with an empty answer (destroy, stop, signal, set, rm,\n" +
        "                     net-out) print nothing\n" +
        "  -h, --help         this help; 'garden COMMAND --help' for one command\n" +
        "  --version          print garden's version\n" +
        "\n" +
        "Exit codes: 0 success, 1 error (the daemon's message on stderr), 2 bad usage.\n" +
        "run and attach exit with the process's exit code (128+N when killed by signal N),\n" +
        "and with 125 when garden itself failed (bad usage, daemon unreachable or refused).";

    public static string For(string? topic) =>
        topic is not null && Commands.TryGetValue(topic, out var text) ? text : Overview;
}
