using System.Collections.Concurrent;
using System.Threading.Channels;
using Garden.Linux.Agent;
using Garden.Linux.Cgroups;
using Garden.Linux.Rootfs;
using Garden.Linux.Runtime;
using Garden.Protocol.Agent;
using Google.Protobuf;

namespace Garden.Testing;

/// <summary>A call a fake took, as a typed record: tests assert on the record (its type and values), never on log text.
/// Calls for one container derive from <see cref="OfContainer"/>; the agent fake serves every container, so its calls
/// name processes.</summary>
public abstract record Call
{
    /// <summary>True when one of its names (handle, process id, path) contains <paramref name="text"/>.</summary>
    public bool Names(string text) => GetType().GetProperties()
        .Where(p => p.PropertyType == typeof(string))
        .Any(p => p.GetValue(this) is string v && v.Contains(text, StringComparison.Ordinal));

    /// <summary>A call for one container, whichever fake took it.</summary>
    public abstract record OfContainer(string Handle) : Call;

    // the OCI runtime
    public sealed record Ran(string Handle) : OfContainer(Handle);
    /// <summary>A container's UTS namespace (its init's pid) was given a hostname (a warm pool entry taken).</summary>
    public sealed record HostnameSet(int Pid, string Hostname) : Call;
    public sealed record Adopted(string Handle) : OfContainer(Handle);
    public sealed record Killed(string Handle, int Signal) : OfContainer(Handle);
    public sealed record Deleted(string Handle) : OfContainer(Handle);

    // the rootfs, the user namespace, the cgroups
    public sealed record RootfsCreated(string Handle) : OfContainer(Handle);
    public sealed record RootfsDestroyed(string Handle) : OfContainer(Handle);
    public sealed record UserNamespaceMade(string Handle, Garden.Linux.UserNamespaces.IdMapping Mapping) : OfContainer(Handle);
    public sealed record CgroupApplied(string Handle) : OfContainer(Handle);
    public sealed record CgroupReleased(string Handle) : OfContainer(Handle);

    // the network, the firewall, the disk
    public sealed record NetworkSetUp(string Handle, Garden.Linux.Network.Ipv4 Address) : OfContainer(Handle);
    public sealed record NetworkTornDown(string Handle) : OfContainer(Handle);
    public sealed record BandwidthSet(string Handle, ulong? RateBytes) : OfContainer(Handle);
    public sealed record FirewallApplied(string Handle, int NetIn, int NetOut) : OfContainer(Handle);
    public sealed record FirewallRemoved(string Handle) : OfContainer(Handle);
    public sealed record SharedFirewallReleased : Call;
    public sealed record DiskCreated(string Handle, ulong Bytes) : OfContainer(Handle);
    public sealed record DiskResized(string Handle, ulong Bytes) : OfContainer(Handle);
    public sealed record DiskDestroyed(string Handle) : OfContainer(Handle);

    // the agent
    public sealed record Spawned(string ProcessId, string Path) : Call;
    public sealed record Signalled(string ProcessId, int Number) : Call;
    public sealed record SignalledAll(int Number) : Call;
    public sealed record TtyResized(string ProcessId, uint Rows, uint Cols) : Call;
}

/// <summary>Records every call the fakes take, in order; each fake has a contract test that also runs against the real
/// implementation.</summary>
public sealed class CallLog
{
    private readonly ConcurrentQueue<Call> _calls = new();
    public void Add(Call call) => _calls.Enqueue(call);
    public IReadOnlyList<Call> All => _calls.ToList();

    /// <summary>How many calls equal <paramref name="call"/>.</summary>
    public int Count(Call call) => _calls.Count(c => c.Equals(call));

    /// <summary>How many calls of type <typeparamref name="T"/> (that match <paramref name="where"/>) there were.</summary>
    public int Count<T>(Func<T, bool>? where = null) where T : Call => _calls.OfType<T>().Count(c => where?.Invoke(c) ?? true);

    /// <summary>The calls of one container, in order.</summary>
    public IReadOnlyList<Call.OfContainer> Of(string handle) => _calls.OfType<Call.OfContainer>().Where(c => c.Handle == handle).ToList();
}

public sealed class FakeOciRuntime(CallLog log) : IOciRuntime
{
    private readonly ConcurrentDictionary<string, OciStatus> _containers = new();

    /// <summary>Set to make the next RunAsync fail like runc would.</summary>
    public string? FailRunWith { get; set; }

    /// <summary>The bundle of each container's last RunAsync.</summary>
    public ConcurrentDictionary<string, BundleSpec> Bundles { get; } = new();

    /// <summary>When set, RunAsync waits for it (to hold a Create in the middle).</summary>
    public Task? RunGate { get; set; }

    public async Task RunAsync(BundleSpec spec, string bundleDir, CancellationToken ct)
    {
        log.Add(new Call.Ran(spec.Handle));
        Bundles[spec.Handle] = spec;
        if (RunGate is { } gate) await gate;
        if (FailRunWith is { } why) throw new OciRuntimeException("run", spec.Handle, why);
        if (!_containers.TryAdd(spec.Handle, OciStatus.Running))
            throw new OciRuntimeException("run", spec.Handle, $"container with id exists: {spec.Handle}");
    }

    public void Adopt(string id, string bundleDir) => log.Add(new Call.Adopted(id));

    /// <summary>Makes a container vanish from the runtime (as if runc's state were deleted behind our back).</summary>
    public void Forget(string id) => _containers.TryRemove(id, out _);

    /// <summary>Makes a container's init exit (as if the agent died).</summary>
    public void StopInit(string id) => _containers[id] = OciStatus.Stopped;

    public Task<OciState?> StateAsync(string id, CancellationToken ct) =>
        Task.FromResult(_containers.TryGetValue(id, out var s) ? new OciState(id, s, s == OciStatus.Stopped ? 0 : 4242, "/bundle") : null);

    public Task KillAsync(string id, int signal, bool all, CancellationToken ct)
    {
        log.Add(new Call.Killed(id, signal));
        if (signal == 9 && _containers.ContainsKey(id)) _containers[id] = OciStatus.Stopped;
        return Task.CompletedTask;
    }

    public Task<bool> WaitStoppedAsync(string id, TimeSpan timeout, CancellationToken ct) =>
        Task.FromResult(!_containers.TryGetValue(id, out var s) || s == OciStatus.Stopped);

    public Task DeleteAsync(string id, CancellationToken ct)
    {
        log.Add(new Call.Deleted(id));
        if (_containers.TryGetValue(id, out var s) && s != OciStatus.Stopped)
            throw new OciRuntimeException("delete", id, "cannot delete container that is not stopped");
        _containers.TryRemove(id, out _);
        return Task.CompletedTask;
    }

    public IReadOnlyCollection<string> Containers => _containers.Keys.ToList();
}

public sealed class FakeRootfs(CallLog log) : IRootfsProvider
{
    private readonly ConcurrentDictionary<string, bool> _mounted = new();

    /// <summary>The user namespace root each container's rootfs was made for (null: none).</summary>
    public ConcurrentDictionary<string, UserNamespaceRoot?> Owners { get; } = new();

    public Task<string> CreateAsync(string handle, RootfsLayers baseRootfs, RootfsPaths paths, string? layerDir, UserNamespaceRoot? userns,
        CancellationToken ct)
    {
        log.Add(new Call.RootfsCreated(handle));
        foreach (var dir in baseRootfs.Dirs)
            if (!Directory.Exists(dir)) throw new RootfsException($"rootfs {dir} does not exist or is not a directory");
        Owners[handle] = userns;
        _mounted[paths.MountPoint] = true;
        return Task.FromResult(paths.MountPoint);
    }

    private Exception? _failNextDestroy;

    /// <summary>Set to make the next Destroy fail (as a busy mount would: nothing unmounted).</summary>
    public Exception? FailNextDestroy { get => _failNextDestroy; set => _failNextDestroy = value; }

    public Task DestroyAsync(string handle, RootfsPaths paths, CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _failNextDestroy, null) is { } e) return Task.FromException(e);
        log.Add(new Call.RootfsDestroyed(handle));
        _mounted.TryRemove(paths.MountPoint, out _);
        _mounted.TryRemove(paths.LegacyMountPoint, out _);
        return Task.CompletedTask;
    }

    public bool IsMounted(string mountPoint) => _mounted.ContainsKey(mountPoint);

    /// <summary>A root mounted where builds before user namespaces put it (for upgrade tests).</summary>
    public void MountLegacy(RootfsPaths paths) => _mounted[paths.LegacyMountPoint] = true;

    public int MountedCount => _mounted.Count;
}

/// <summary>User namespaces in memory: each Create holds one until it is disposed; the test sees which mappings were
/// made and that none is left held.</summary>
public sealed class FakeUserNamespaces(CallLog log) : Garden.Linux.UserNamespaces.IUserNamespaces
{
    private int _held;
    private int _pid = 5000;

    /// <summary>Set to make the next Create fail (as a kernel refusing the mapping would).</summary>
    public Exception? FailNext { get; set; }

    public int Held => Volatile.Read(ref _held);

    public ConcurrentDictionary<string, Garden.Linux.UserNamespaces.IdMapping> Made { get; } = new();

    public Task<Garden.Linux.UserNamespaces.IUserNamespaceHolder> CreateAsync(string handle, Garden.Linux.UserNamespaces.IdMapping mapping, CancellationToken ct)
    {
        if (FailNext is { } e)
        {
            FailNext = null;
            throw e;
        }
        log.Add(new Call.UserNamespaceMade(handle, mapping));
        Made[handle] = mapping;
        Interlocked.Increment(ref _held);
        return Task.FromResult<Garden.Linux.UserNamespaces.IUserNamespaceHolder>(new Holder(this, mapping, Interlocked.Increment(ref _pid)));
    }

    private sealed class Holder(FakeUserNamespaces owner, Garden.Linux.UserNamespaces.IdMapping mapping, int pid)
        : Garden.Linux.UserNamespaces.IUserNamespaceHolder
    {
        private int _disposed;
        public Garden.Linux.UserNamespaces.IdMapping Mapping => mapping;
        public uint Owner => Garden.Linux.UserNamespaces.NamespaceOwners.First + (uint)pid;
        public int Pid => pid;
        public string UserNamespacePath => $"/proc/{pid}/ns/user";

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) Interlocked.Decrement(ref owner._held);
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>Cgroups that exist while the fake runtime runs the container (runc creates them; Release removes them).</summary>
public sealed class FakeCgroups(CallLog log, FakeOciRuntime? runtime = null) : ICgroupManager
{
    public string PathFor(string handle) => $"/garden-test-fake/{handle}";
    /// <summary>Who each container's process cgroup was delegated to (null: nobody, host root runs the agent).</summary>
    public ConcurrentDictionary<string, CgroupOwner?> Delegated { get; } = new();

    public string? PrepareProcessCgroup(string handle, CgroupOwner? delegateTo = null)
    {
        Delegated[handle] = delegateTo;
        return null;
    }
    public void Release(string handle) => log.Add(new Call.CgroupReleased(handle));
    public bool Exists(string handle) => runtime is null || runtime.Containers.Contains(handle);

    private readonly ConcurrentDictionary<string, ResourceLimits> _limits = new();

    public void Apply(string handle, ResourceLimits limits)
    {
        log.Add(new Call.CgroupApplied(handle));
        var now = _limits.GetValueOrDefault(handle, ResourceLimits.None);
        _limits[handle] = new ResourceLimits(limits.MemoryBytes ?? now.MemoryBytes, limits.CpuWeight ?? now.CpuWeight,
            limits.CpuQuota ?? now.CpuQuota, limits.Pids ?? now.Pids);
    }

    /// <summary>The weight a cgroup has when none was set (v1's default cpu.shares): like the kernel, the fake always reads one.</summary>
    public const ulong DefaultCpuWeight = 1024;

    public ResourceLimits Read(string handle)
    {
        var l = _limits.GetValueOrDefault(handle, ResourceLimits.None);
        return l with { CpuWeight = l.CpuWeight ?? DefaultCpuWeight };
    }

    public CgroupMetrics Metrics(string handle)
    {
        var l = _limits.GetValueOrDefault(handle, ResourceLimits.None);
        return new(0, l.MemoryBytes, new Dictionary<string, ulong>(), 0, 0, 0, 0, 0, l.Pids);
    }
}

/// <summary>An in-memory agent: processes are scripted by the test (output chunks then an exit code).</summary>
public sealed class FakeAgent(CallLog log) : IAgentConnector, IAgentClient
{
    private readonly ConcurrentDictionary<string, FakeProcess> _processes = new();

    /// <summary>What a spawned process does: given the spec, produce output and an exit code.</summary>
    public Func<SpawnRequest, (string Output, int ExitCode)> Behaviour { get; set; } = _ => ("", 0);

    public bool Reachable { get; set; } = true;

    /// <summary>Spawned processes run until signalled (otherwise they have exited by the time Spawn returns).</summary>
    public bool SpawnsRunning { get; set; }

    public string SocketPath => "/fake/agent.sock";

    public IAgentClient Connect(string socketPath) => this;

    /// <summary>When set, Ping waits for it (to hold a reconcile in the middle).</summary>
    public Task? PingGate { get; set; }

    public async Task<Pong> PingAsync(CancellationToken ct)
    {
        Check();
        if (PingGate is { } gate) await gate.WaitAsync(ct);
        return new Pong { AgentPid = 1, Version = "fake" };
    }

    public Task<Spawned> SpawnAsync(SpawnRequest spec, CancellationToken ct)
    {
        Check();
        log.Add(new Call.Spawned(spec.Id, spec.Path));
        if (spec.Path.StartsWith("/missing", StringComparison.Ordinal))
            throw new AgentException(ErrorCode.NotExecutable, $"{spec.Path}: no such file or directory");
        var (output, exit) = Behaviour(spec);
        var p = new FakeProcess(spec.Id, System.Text.Encoding.UTF8.GetBytes(output), exit) { Tty = spec.Tty ? (spec.Rows, spec.Cols) : null, Running = SpawnsRunning };
        if (!_processes.TryAdd(spec.Id, p)) throw new AgentException(ErrorCode.AlreadyExists, $"process {spec.Id} exists");
        return Task.FromResult(new Spawned { Id = spec.Id, Pid = 100 + _processes.Count });
    }

    public async Task<IAgentStream> SpawnAttachedAsync(SpawnRequest spec, CancellationToken ct)
    {
        var s = await SpawnAsync(spec, ct);
        return new FakeStream(_processes[s.Id], 0, s.Pid);
    }

    public Task<IAgentStream> AttachAsync(string processId, ulong fromOffset, CancellationToken ct)
    {
        Check();
        if (!_processes.TryGetValue(processId, out var p)) throw new AgentException(ErrorCode.NotFound, $"no process {processId}");
        return Task.FromResult<IAgentStream>(new FakeStream(p, fromOffset, 0));
    }

    public Task SignalAsync(string processId, int signal, CancellationToken ct)
    {
        Check();
        log.Add(new Call.Signalled(processId, signal));
        if (!_processes.TryGetValue(processId, out var p)) throw new AgentException(ErrorCode.NotFound, $"no process {processId}");
        p.Running = false;
        return Task.CompletedTask;
    }

    public Task SetTtyAsync(string processId, uint rows, uint cols, CancellationToken ct)
    {
        Check();
        if (!_processes.TryGetValue(processId, out var p)) throw new AgentException(ErrorCode.NotFound, $"no process {processId}");
        if (p.Tty is null) throw new AgentException(ErrorCode.Invalid, $"process {processId} has no terminal to resize");
        if (rows == 0 || cols == 0) throw new AgentException(ErrorCode.Invalid, $"a terminal of {rows}x{cols} has no room");
        log.Add(new Call.TtyResized(processId, rows, cols));
        p.Tty = (rows, cols);
        return Task.CompletedTask;
    }

    public Task SignalAllAsync(int signal, CancellationToken ct)
    {
        Check();
        log.Add(new Call.SignalledAll(signal));
        foreach (var p in _processes.Values) p.Running = false;
        return Task.CompletedTask;
    }

    /// <summary>When set, List waits for it (a frozen or slow agent).</summary>
    public Task? ListGate { get; set; }

    private int _listCalls;

    /// <summary>List calls so far.</summary>
    public int ListCalls => Volatile.Read(ref _listCalls);

    public async Task<IReadOnlyList<ProcessEntry>> ListAsync(CancellationToken ct)
    {
        Check();
        Interlocked.Increment(ref _listCalls);
        if (ListGate is { } gate) await gate.WaitAsync(ct);
        return _processes.Values.Select(p => new ProcessEntry
        {
            Id = p.Id, Pid = 1, Exited = !p.Running, OutputEnd = (ulong)p.Output.Length,
            Exit = p.Running ? null : new Exited { ExitCode = p.ExitCode },
        }).ToList();
    }

    /// <summary>False: WaitExits is refused as an agent of an earlier build refuses it (INVALID), so the container polls
    /// with List. True: answered as the real agent answers it (at an exit not reported yet, at once if one is there, or
    /// at the timeout).</summary>
    public bool WaitsForExits { get; set; }

    private int _waitCalls;

    /// <summary>WaitExits calls so far (refused ones too).</summary>
    public int WaitCalls => Volatile.Read(ref _waitCalls);

    public async Task<IReadOnlyList<ProcessEntry>> WaitExitsAsync(TimeSpan wait, CancellationToken ct)
    {
        Check();
        Interlocked.Increment(ref _waitCalls);
        if (!WaitsForExits) throw new AgentException(ErrorCode.Invalid, "unexpected first request None");
        var end = DateTime.UtcNow + wait;
        while (DateTime.UtcNow < end && !_processes.Values.Any(p => !p.Running && !p.ExitReported))
        {
            await Task.Delay(5, ct);
            Check(); // the agent went while the connection was held
        }
        var list = _processes.Values.Select(p => new ProcessEntry
        {
            Id = p.Id, Pid = 1, Exited = !p.Running, OutputEnd = (ulong)p.Output.Length,
            Exit = p.Running ? null : new Exited { ExitCode = p.ExitCode }, ExitReported = !p.Running && p.ExitReported,
        }).ToList();
        foreach (var p in _processes.Values)
            if (!p.Running) p.ExitReported = true;
        return list;
    }

    /// <summary>Log files followed (the fake agent logs nothing).</summary>
    public List<string> LogFollowers { get; } = [];

    public IAsyncDisposable FollowLog(string logFile, Action<string>? problem = null)
    {
        lock (LogFollowers) LogFollowers.Add(logFile);
        return new NoFollower();
    }

    private sealed class NoFollower : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>Marks a process as long-running (it exits only when signalled).</summary>
    public void KeepRunning(string id) => _processes[id].Running = true;

    private void Check()
    {
        if (!Reachable) throw new AgentUnavailableException(SocketPath, "connection refused");
    }

    private sealed class FakeProcess(string id, byte[] output, int exitCode)
    {
        public string Id { get; } = id;
        public byte[] Output { get; } = output;
        public int ExitCode { get; } = exitCode;
        public bool Running { get; set; }
        public bool ExitReported { get; set; }
        public (uint Rows, uint Cols)? Tty { get; set; }
    }

    /// <summary>The terminal size of a process, or null when it has none.</summary>
    public (uint Rows, uint Cols)? TtyOf(string processId) => _processes.TryGetValue(processId, out var p) ? p.Tty : null;

    private sealed class FakeStream : IAgentStream
    {
        private readonly Channel<AgentEvent> _events = Channel.CreateUnbounded<AgentEvent>();

        public FakeStream(FakeProcess p, ulong from, int pid)
        {
            ProcessId = p.Id;
            Pid = pid;
            if (from < (ulong)p.Output.Length)
                _events.Writer.TryWrite(new AgentEvent { Output = new OutputChunk { Offset = from, Data = ByteString.CopyFrom(p.Output, (int)from, p.Output.Length - (int)from) } });
            _events.Writer.TryWrite(new AgentEvent { Exited = new Exited { ExitCode = p.ExitCode } });
            _events.Writer.Complete();
        }

        public string ProcessId { get; }
        public int Pid { get; }
        public List<byte> Stdin { get; } = [];

        public async ValueTask<AgentEvent?> ReadAsync(CancellationToken ct) =>
            await _events.Reader.WaitToReadAsync(ct) && _events.Reader.TryRead(out var e) ? e : null;

        public ValueTask WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            Stdin.AddRange(data.ToArray());
            return ValueTask.CompletedTask;
        }

        public ValueTask CloseStdinAsync(CancellationToken ct) => ValueTask.CompletedTask;
        public ValueTask ResizeAsync(uint rows, uint cols, CancellationToken ct) => ValueTask.CompletedTask;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>Fixed host figures for actor tests.</summary>
public sealed class FakeHostResources(ulong memory = 1024, ulong disk = 2048) : Garden.Linux.Host.IHostResources
{
    public ulong MemoryBytes() => memory;
    public ulong DiskBytes(string path) => disk;

    /// <summary>Ports the test says something on the host listens on.</summary>
    public HashSet<int> BusyPorts { get; } = [];
    public bool TcpPortInUse(int port) => BusyPorts.Contains(port);

    /// <summary>The real host's answer: tests pass real temp paths.</summary>
    public string? ResolvePath(string path) => new Garden.Linux.Host.HostResources().ResolvePath(path);
}

/// <summary>Network plumbing in memory: which containers have their namespace and veth, and their bandwidth limits.</summary>
public sealed class FakeNetwork(CallLog log) : Garden.Linux.Network.INetworkPlumbing
{
    private readonly ConcurrentDictionary<string, Garden.Linux.Network.ContainerNetwork> _up = new();
    private readonly ConcurrentDictionary<string, Garden.Linux.Network.Bandwidth> _bandwidth = new();

    /// <summary>Set to make the next SetUp fail (as the kernel would refuse it).</summary>
    public Exception? FailNextSetUp { get; set; }

    /// <summary>The process whose network namespace each container's was taken from (null: a new one).</summary>
    public ConcurrentDictionary<string, int?> NetnsOf { get; } = new();

    public Task SetUpAsync(Garden.Linux.Network.ContainerNetwork network, CancellationToken ct, int? netnsOfPid = null)
    {
        NetnsOf[network.Handle] = netnsOfPid;
        if (FailNextSetUp is { } e)
        {
            FailNextSetUp = null;
            throw e;
        }
        log.Add(new Call.NetworkSetUp(network.Handle, network.Address));
        _up[network.Netns] = network;
        return Task.CompletedTask;
    }

    /// <summary>The name files each container got (written like the real ones, without owner or mode).</summary>
    public ConcurrentDictionary<string, Garden.Linux.Network.NameFiles> NameFiles { get; } = new();

    public Task WriteNameFilesAsync(Garden.Linux.Network.ContainerNetwork network, Garden.Linux.Network.NameFiles files, CancellationToken ct)
    {
        NameFiles[network.Handle] = files;
        File.WriteAllText(files.HostsPath, files.Hosts(network.Address));
        File.WriteAllText(files.ResolvPath, files.Resolv());
        return Task.CompletedTask;
    }

    public Task TearDownAsync(Garden.Linux.Network.ContainerNetwork network, CancellationToken ct)
    {
        if (_up.TryRemove(network.Netns, out _)) log.Add(new Call.NetworkTornDown(network.Handle));
        _bandwidth.TryRemove(network.Netns, out _);
        return Task.CompletedTask;
    }

    public bool Exists(Garden.Linux.Network.ContainerNetwork network) => _up.ContainsKey(network.Netns);

    public Garden.Linux.Network.NetCounters Counters(Garden.Linux.Network.ContainerNetwork network) => new(10, 20);

    public Task SetBandwidthAsync(Garden.Linux.Network.ContainerNetwork network, Garden.Linux.Network.Bandwidth? limit, CancellationToken ct)
    {
        log.Add(new Call.BandwidthSet(network.Handle, limit?.RateBytes));
        if (limit is { } l) _bandwidth[network.Netns] = l;
        else _bandwidth.TryRemove(network.Netns, out _);
        return Task.CompletedTask;
    }

    public Task<Garden.Linux.Network.Bandwidth?> ReadBandwidthAsync(Garden.Linux.Network.ContainerNetwork network, CancellationToken ct) =>
        Task.FromResult(_bandwidth.TryGetValue(network.Netns, out var b) ? b : (Garden.Linux.Network.Bandwidth?)null);

    public Task<IReadOnlyList<string>> PruneAsync(string prefix, IReadOnlyCollection<Garden.Linux.Network.ContainerNetwork> live, CancellationToken ct)
    {
        var keep = live.Select(n => n.Netns).ToHashSet();
        var gone = _up.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !keep.Contains(k)).ToList();
        foreach (var g in gone) _up.TryRemove(g, out _);
        return Task.FromResult<IReadOnlyList<string>>(gone);
    }

    public IReadOnlyCollection<string> Handles => _up.Values.Select(n => n.Handle).ToList();

    /// <summary>Simulates an operator or a crash removing the container's links.</summary>
    public void Vanish(string handle)
    {
        foreach (var (k, v) in _up) if (v.Handle == handle) _up.TryRemove(k, out _);
    }
}

/// <summary>A firewall in memory: the rule set each container has in the kernel, and whether the shared chains (with the
/// jumps into them and the IPv6 guard) exist: made by the first Apply, kept by Remove, gone with Release or a Prune that
/// leaves no container with rules, like the real one.</summary>
public sealed class FakeFirewall(CallLog log) : Garden.Linux.Network.IFirewall
{
    private readonly ConcurrentDictionary<string, Garden.Linux.Network.ContainerFirewall> _rules = new();
    private readonly Lock _shared = new();

    /// <summary>True while the shared chains exist.</summary>
    public bool SharedExist { get; private set; }

    /// <summary>Set to make the next Apply fail (as iptables-restore would refuse it: nothing applied).</summary>
    public Exception? FailNextApply { get; set; }

    /// <summary>When set, every Apply waits for it (a slow iptables-restore).</summary>
    public Task? ApplyGate { get; set; }

    public async Task ApplyAsync(Garden.Linux.Network.ContainerFirewall container, CancellationToken ct)
    {
        if (ApplyGate is { } gate) await gate.WaitAsync(ct);
        foreach (var r in container.NetOut) r.Validated();
        if (FailNextApply is { } e)
        {
            FailNextApply = null;
            throw e;
        }
        log.Add(new Call.FirewallApplied(container.Network.Handle, container.NetIn.Count, container.NetOut.Count));
        lock (_shared)
        {
            _rules[container.Network.Handle] = container;
            SharedExist = true;
        }
    }

    public async Task<bool> EnsureAsync(Garden.Linux.Network.ContainerFirewall container, CancellationToken ct)
    {
        if (_rules.TryGetValue(container.Network.Handle, out var held) && held.NetIn.SequenceEqual(container.NetIn) &&
            held.NetOut.Count == container.NetOut.Count)
            return false;
        await ApplyAsync(container, ct);
        return true;
    }

    /// <summary>When set, every Remove waits for it (a slow iptables-restore).</summary>
    public Task? RemoveGate { get; set; }

    public async Task RemoveAsync(Garden.Linux.Network.ContainerNetwork network, CancellationToken ct)
    {
        if (RemoveGate is { } gate) await gate.WaitAsync(ct);
        if (_rules.TryRemove(network.Handle, out _)) log.Add(new Call.FirewallRemoved(network.Handle));
    }

    /// <summary>When set, the startup prune waits for it (a slow iptables-save).</summary>
    public Task? PruneGate { get; set; }

    public async Task<IReadOnlyList<string>> PruneAsync(IReadOnlySet<string> liveHandles, CancellationToken ct)
    {
        if (PruneGate is { } gate) await gate.WaitAsync(ct);
        return Prune(liveHandles);
    }

    private IReadOnlyList<string> Prune(IReadOnlySet<string> liveHandles)
    {
        lock (_shared)
        {
            var dead = _rules.Keys.Where(h => !liveHandles.Contains(h)).ToList();
            foreach (var h in dead) _rules.TryRemove(h, out _);
            if (_rules.IsEmpty) SharedExist = false;
            return dead;
        }
    }

    public Task<bool> ReleaseSharedAsync(CancellationToken ct)
    {
        lock (_shared)
        {
            if (!SharedExist || !_rules.IsEmpty) return Task.FromResult(false);
            SharedExist = false;
            log.Add(new Call.SharedFirewallReleased());
            return Task.FromResult(true);
        }
    }

    public Task<IReadOnlySet<string>> InstalledAsync(CancellationToken ct) =>
        Task.FromResult<IReadOnlySet<string>>(_rules.Keys.ToHashSet());

    public Garden.Linux.Network.ContainerFirewall? Of(string handle) => _rules.GetValueOrDefault(handle);

    /// <summary>Simulates rules lost from the kernel.</summary>
    public void Flush(string handle) => _rules.TryRemove(handle, out _);
}

/// <summary>A disk quota in memory: size per depot; shrinking refused like the real one.</summary>
public sealed class FakeDiskQuota(CallLog log) : Garden.Linux.Disk.IDiskQuota
{
    private readonly ConcurrentDictionary<string, ulong> _disks = new();

    public Task<string> CreateAsync(string handle, string depotDir, ulong bytes, CancellationToken ct)
    {
        log.Add(new Call.DiskCreated(handle, bytes));
        _disks[depotDir] = bytes;
        // the real one mounts its file system there: a directory the container's files may be written into
        return Task.FromResult(Directory.CreateDirectory(Path.Combine(depotDir, "disk")).FullName);
    }

    public Task ResizeAsync(string handle, string depotDir, ulong bytes, CancellationToken ct)
    {
        var now = _disks[depotDir];
        if (bytes < now) throw new Garden.Linux.Disk.DiskQuotaException($"cannot shrink the disk limit of {handle} from {now} to {bytes}");
        log.Add(new Call.DiskResized(handle, bytes));
        _disks[depotDir] = bytes;
        return Task.CompletedTask;
    }

    public Task DestroyAsync(string handle, string depotDir, CancellationToken ct)
    {
        if (_disks.TryRemove(depotDir, out _)) log.Add(new Call.DiskDestroyed(handle));
        return Task.CompletedTask;
    }

    public bool IsMounted(string depotDir) => _disks.ContainsKey(depotDir);

    public (ulong Used, ulong Size)? Usage(string depotDir) => _disks.TryGetValue(depotDir, out var size) ? (0, size) : null;

    public int Count => _disks.Count;
}

/// <summary>An OOM notifier the test fires by hand.</summary>
public sealed class FakeOomNotifier : Garden.Linux.Cgroups.IOomNotifier
{
    private readonly ConcurrentDictionary<string, Action> _watches = new();

    public IDisposable Watch(string handle, Action onOomKill)
    {
        _watches[handle] = onOomKill;
        // a later watch of the same container (a new incarnation) is not removed by an earlier one's disposal
        return new Unwatch(() => _watches.TryRemove(new KeyValuePair<string, Action>(handle, onOomKill)));
    }

    /// <summary>Simulates the kernel killing a process of the container; false if nobody watches it.</summary>
    public bool Kill(string handle)
    {
        if (!_watches.TryGetValue(handle, out var a)) return false;
        a();
        return true;
    }

    public bool Watching(string handle) => _watches.ContainsKey(handle);

    private sealed class Unwatch(Action a) : IDisposable
    {
        public void Dispose() => a();
    }
}

/// <summary>Every fake a container's effects are made of, on one call log: the runtime (whose containers own the cgroups,
/// as runc's do), rootfs, cgroups, agent, disk, OOM notifier, network, firewall and user namespaces; and the host's
/// figures.</summary>
public sealed class FakeEffects
{
    public FakeEffects()
    {
        Runtime = new FakeOciRuntime(Calls);
        Rootfs = new FakeRootfs(Calls);
        Cgroups = new FakeCgroups(Calls, Runtime);
        Agent = new FakeAgent(Calls);
        Disk = new FakeDiskQuota(Calls);
        Network = new FakeNetwork(Calls);
        Firewall = new FakeFirewall(Calls);
        UserNamespaces = new FakeUserNamespaces(Calls);
    }

    public CallLog Calls { get; } = new();
    public FakeOciRuntime Runtime { get; }
    public FakeRootfs Rootfs { get; }
    public FakeCgroups Cgroups { get; }
    public FakeAgent Agent { get; }
    public FakeDiskQuota Disk { get; }
    public FakeOomNotifier Oom { get; } = new();
    public FakeNetwork Network { get; }
    public FakeFirewall Firewall { get; }
    public FakeUserNamespaces UserNamespaces { get; }
    public FakeHostResources Resources { get; } = new();
    public FakeBaseSizes BaseSizes { get; } = new();
    public RecordingMetrics Metrics { get; } = new();

    /// <summary>The effects made of these fakes; <paramref name="rootfs"/> or <paramref name="network"/> put a wrapper
    /// of the test's in place of the fake.</summary>
    public Garden.Actors.Container.ContainerEffects Effects(IRootfsProvider? rootfs = null, Garden.Linux.Network.INetworkPlumbing? network = null) =>
        new(Runtime, rootfs ?? Rootfs, Cgroups, Agent, Disk, Oom, network ?? Network, Firewall, UserNamespaces,
            new Garden.Linux.Host.Depot(), // the real one, on the test's temp state dir
            BaseSizes, Metrics, Hostnames: Hostnames);

    public FakeHostnames Hostnames => new(Calls);
}

/// <summary>Records each hostname set (<see cref="Call.HostnameSet"/>).</summary>
public sealed class FakeHostnames(CallLog log) : Garden.Linux.Runtime.IContainerHostname
{
    public Task SetAsync(int initPid, string hostname)
    {
        log.Add(new Call.HostnameSet(initPid, hostname));
        return Task.CompletedTask;
    }
}

/// <summary>The actors' metrics, as told (<see cref="Garden.Actors.IGardenMetrics"/>): what the last census said, the
/// counts of journal writes, recoveries and OOM kills.</summary>
public sealed class RecordingMetrics : Garden.Actors.IGardenMetrics
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, int> _journaled = new();
    private readonly List<string> _oomKilled = new();
    private IReadOnlyDictionary<Garden.Actors.ContainerLifecycle, int> _census = new Dictionary<Garden.Actors.ContainerLifecycle, int>();

    public int Recoveries { get; private set; }

    public int Journaled(string writer) { lock (_lock) return _journaled.GetValueOrDefault(writer); }

    public int InState(Garden.Actors.ContainerLifecycle state) { lock (_lock) return _census.GetValueOrDefault(state); }

    public IReadOnlyList<string> OomKilled() { lock (_lock) return [.. _oomKilled]; }

    public void Journaled(string writer, int events) { lock (_lock) _journaled[writer] = _journaled.GetValueOrDefault(writer) + events; }

    public void ContainersByState(IReadOnlyDictionary<Garden.Actors.ContainerLifecycle, int> counts) { lock (_lock) _census = counts; }

    public void Recovered(int reattached, int broken, int released, int unfinished, TimeSpan took) { lock (_lock) Recoveries++; }

    public void OomKilled(string handle) { lock (_lock) _oomKilled.Add(handle); }

    public void Operation(string kind, TimeSpan took, string? errorCode) { }

    public void AgentCall(string call, TimeSpan took, bool failed) { }
}

/// <summary>Every base rootfs is <see cref="Bytes"/> big (3 MiB unless a test says otherwise).</summary>
public sealed class FakeBaseSizes : Garden.Linux.Rootfs.IBaseRootfsSizes
{
    public ulong Bytes { get; set; } = 3UL << 20;

    public Task<ulong> SizeAsync(string baseRootfs) => Task.FromResult(Bytes);
}
