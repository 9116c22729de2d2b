using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using ErrorKind = Garden.Actors.ErrorKind;
using GardenException = Garden.Actors.GardenException;
using Garden.Host.GardenHttp;
using Garden.Protocol.Api;
using Google.Protobuf;

namespace Garden.GardenHttp.Tests;

/// <summary>A hand-written backend that records every call (as the protobuf request the layer made) and answers what
/// a test set up. Unset answers are plain defaults; <see cref="Fail"/> makes one method throw.</summary>
public sealed class FakeBackend : IGardenHttpBackend
{
    public ConcurrentQueue<(string Method, IMessage Request)> Calls { get; } = new();
    public ConcurrentDictionary<string, Exception> Failures { get; } = new();
    public ConcurrentDictionary<string, int> Holds { get; } = new();   // handle → holds open now
    public ConcurrentQueue<string> HoldLog { get; } = new();            // "+h" / "-h"

    public CapacityResponse Capacity { get; set; } = new() { MemoryBytes = 16777216000, DiskBytes = 100000000000, MaxContainers = 250 };
    public Protocol.Api.ContainerInfo Info { get; set; } = new() { State = "active" };
    public ContainerMetrics Metrics { get; set; } = new();
    public LimitsResponse Limits { get; set; } = new() { Limits = new Protocol.Api.Limits() };
    public Dictionary<string, string> Properties { get; set; } = [];
    public List<string> Handles { get; set; } = [];
    public Func<StreamOutRequest, Stream> StreamOut { get; set; } = _ => new MemoryStream([]);
    public ConcurrentQueue<byte[]> StreamedIn { get; } = new();
    /// <summary>Run's and Attach's processes, in the order made.</summary>
    public ConcurrentQueue<FakeProcess> Processes { get; } = new();
    public Func<RunRequest, FakeProcess> NewProcess { get; set; } = r => new FakeProcess(r.Spec.Id.Length > 0 ? r.Spec.Id : "p1");
    public Func<AttachRequest, FakeProcess> AttachTo { get; set; } = r => new FakeProcess(r.ProcessId);

    public FakeBackend Fail(string method, Exception e)
    {
        Failures[method] = e;
        return this;
    }

    public IEnumerable<T> Requests<T>(string method) where T : IMessage => Calls.Where(c => c.Method == method).Select(c => (T)c.Request);

    public T Single<T>(string method) where T : IMessage => Assert.Single(Requests<T>(method));

    private async Task<T> Call<T>(string method, IMessage request, Func<T> answer)
    {
        Calls.Enqueue((method, request));
        await Task.Yield();
        if (Failures.TryGetValue(method, out var e)) throw e;
        return answer();
    }

    public Task<PingResponse> PingAsync(PingRequest r, CancellationToken ct) => Call("Ping", r, () => new PingResponse { Version = "test" });
    public Task<CapacityResponse> CapacityAsync(CapacityRequest r, CancellationToken ct) => Call("Capacity", r, () => Capacity);
    public Task<Protocol.Api.CreateResponse> CreateAsync(CreateRequest r, CancellationToken ct) =>
        Call("Create", r, () => new Protocol.Api.CreateResponse { Handle = r.Spec.Handle.Length > 0 ? r.Spec.Handle : "generated" });
    public Task<DestroyResponse> DestroyAsync(DestroyRequest r, CancellationToken ct) => Call("Destroy", r, () => new DestroyResponse());
    public Task<Protocol.Api.ListResponse> ListAsync(ListRequest r, CancellationToken ct) => Call("List", r, () =>
    {
        var l = new Protocol.Api.ListResponse();
        l.Handles.AddRange(Handles);
        return l;
    });
    public Task<Protocol.Api.ContainerInfo> InfoAsync(InfoRequest r, CancellationToken ct) => Call("Info", r, () => Info);
    public Task<BulkInfoResponse> BulkInfoAsync(BulkInfoRequest r, CancellationToken ct) => Call("BulkInfo", r, () =>
    {
        var b = new BulkInfoResponse();
        foreach (var h in r.Handles)
            b.Infos[h] = Handles.Contains(h) ? new BulkInfoEntry { Info = Info } : new BulkInfoEntry { Error = $"unknown handle: {h}", ErrorCode = "NotFound" };
        return b;
    });
    public Task<Protocol.Api.StopResponse> StopAsync(Protocol.Api.StopRequest r, CancellationToken ct) => Call("Stop", r, () => new Protocol.Api.StopResponse());
    public Task<ContainerMetrics> MetricsAsync(MetricsRequest r, CancellationToken ct) => Call("Metrics", r, () => Metrics);
    public Task<BulkMetricsResponse> BulkMetricsAsync(BulkMetricsRequest r, CancellationToken ct) => Call("BulkMetrics", r, () =>
    {
        var b = new BulkMetricsResponse();
        foreach (var h in r.Handles)
            b.Metrics[h] = Handles.Contains(h) ? new BulkMetricsEntry { Metrics = Metrics } : new BulkMetricsEntry { Error = $"unknown handle: {h}", ErrorCode = "NotFound" };
        return b;
    });
    public Task<LimitsResponse> CurrentLimitsAsync(CurrentLimitsRequest r, CancellationToken ct) => Call("CurrentLimits", r, () => Limits);
    public Task<Protocol.Api.NetInResponse> NetInAsync(Protocol.Api.NetInRequest r, CancellationToken ct) =>
        Call("NetIn", r, () => new Protocol.Api.NetInResponse { HostPort = r.HostPort == 0 ? 61001 : r.HostPort, ContainerPort = r.ContainerPort == 0 ? r.HostPort : r.ContainerPort });
    public Task<NetOutResponse> NetOutAsync(NetOutRequest r, CancellationToken ct) => Call("NetOut", r, () => new NetOutResponse());
    public Task<NetOutResponse> BulkNetOutAsync(BulkNetOutRequest r, CancellationToken ct) => Call("BulkNetOut", r, () => new NetOutResponse());
    public Task<PropertiesResponse> PropertiesAsync(PropertiesRequest r, CancellationToken ct) => Call("Properties", r, () =>
    {
        var p = new PropertiesResponse();
        p.Properties.Add(Properties);
        return p;
    });
    public Task<GetPropertyResponse> GetPropertyAsync(GetPropertyRequest r, CancellationToken ct) => Call("GetProperty", r, () =>
        Properties.TryGetValue(r.Key, out var v)
            ? new GetPropertyResponse { Value = v }
            : throw new GardenException(ErrorKind.NotFound, $"container {r.Handle} has no property \"{r.Key}\""));
    public Task<SetPropertyResponse> SetPropertyAsync(SetPropertyRequest r, CancellationToken ct) => Call("SetProperty", r, () => new SetPropertyResponse());
    public Task<RemovePropertyResponse> RemovePropertyAsync(RemovePropertyRequest r, CancellationToken ct) => Call("RemoveProperty", r, () => new RemovePropertyResponse());
    public Task<SetGraceTimeResponse> SetGraceTimeAsync(SetGraceTimeRequest r, CancellationToken ct) => Call("SetGraceTime", r, () => new SetGraceTimeResponse());

    public async Task<StreamInResponse> StreamInAsync(StreamInRequest r, Stream archive, CancellationToken ct)
    {
        Calls.Enqueue(("StreamIn", r));
        if (Failures.TryGetValue("StreamIn", out var e)) throw e;
        using var copy = new MemoryStream();
        await archive.CopyToAsync(copy, ct);
        StreamedIn.Enqueue(copy.ToArray());
        return new StreamInResponse();
    }

    public Task<Stream> StreamOutAsync(StreamOutRequest r, CancellationToken ct) => Call("StreamOut", r, () => StreamOut(r));

    public Task<IGardenProcess> RunAsync(RunRequest r, CancellationToken ct) => Call<IGardenProcess>("Run", r, () =>
    {
        var p = NewProcess(r);
        Processes.Enqueue(p);
        return p;
    });

    public Task<IGardenProcess> AttachAsync(AttachRequest r, CancellationToken ct) => Call<IGardenProcess>("Attach", r, () =>
    {
        var p = AttachTo(r);
        Processes.Enqueue(p);
        return p;
    });

    public Task<SignalResponse> SignalAsync(SignalRequest r, CancellationToken ct) => Call("Signal", r, () => new SignalResponse());
    public Task<SetTtyResponse> SetTtyAsync(SetTtyRequest r, CancellationToken ct) => Call("SetTty", r, () => new SetTtyResponse());

    public IDisposable PauseGraceTime(string handle)
    {
        Holds.AddOrUpdate(handle, 1, (_, n) => n + 1);
        HoldLog.Enqueue("+" + handle);
        return new Release(() =>
        {
            Holds.AddOrUpdate(handle, 0, (_, n) => n - 1);
            HoldLog.Enqueue("-" + handle);
        });
    }

    private sealed class Release(Action action) : IDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) action();
        }
    }
}

/// <summary>A process a test drives: it emits what the test tells it (<see cref="Out"/>, <see cref="Err"/>,
/// <see cref="Exit"/>) and records what the layer does to it.</summary>
public sealed class FakeProcess(string id) : IGardenProcess
{
    private readonly Channel<ProcessEvent> _events = Channel.CreateUnbounded<ProcessEvent>();
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stdinClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly MemoryStream _stdin = new();
    private ulong _offset;

    public string ProcessId { get; } = id;

    /// <summary>When set, stdin writes wait for it (a process that does not read its stdin).</summary>
    public TaskCompletionSource? StdinGate { get; set; }

    /// <summary>When set, stdin writes fail (a process that exited).</summary>
    public bool StdinBroken { get; set; }

    public Task Disposed => _disposed.Task;
    public Task StdinClosed => _stdinClosed.Task;

    public byte[] Stdin
    {
        get { lock (_stdin) return _stdin.ToArray(); }
    }

    public FakeProcess Out(string text) => Emit(Output.Types.Stream.Stdout, System.Text.Encoding.UTF8.GetBytes(text));
    public FakeProcess Err(string text) => Emit(Output.Types.Stream.Stderr, System.Text.Encoding.UTF8.GetBytes(text));

    public FakeProcess Emit(Output.Types.Stream stream, byte[] data)
    {
        _events.Writer.TryWrite(new ProcessEvent { Output = new Output { Stream = stream, Offset = _offset, Data = ByteString.CopyFrom(data) } });
        _offset += (ulong)data.Length;
        return this;
    }

    public FakeProcess Exit(int code)
    {
        _events.Writer.TryWrite(new ProcessEvent { Exited = new ProcessExited { ExitCode = code, Signal = code > 128 ? code - 128 : 0 } });
        _events.Writer.TryComplete();
        return this;
    }

    /// <summary>The events end without an exit: the stream broke.</summary>
    public void Break(Exception? e = null) => _events.Writer.TryComplete(e);

    public IAsyncEnumerable<ProcessEvent> Events => ReadAll();

    private async IAsyncEnumerable<ProcessEvent> ReadAll([EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var e in _events.Reader.ReadAllAsync(ct)) yield return e;
    }

    public async Task WriteStdinAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (StdinGate is { } gate) await gate.Task.WaitAsync(ct);
        if (StdinBroken) throw new IOException("the process's stdin is closed");
        lock (_stdin) _stdin.Write(data.Span);
    }

    public Task CloseStdinAsync(CancellationToken ct)
    {
        _stdinClosed.TrySetResult();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _disposed.TrySetResult();
        return ValueTask.CompletedTask;
    }
}
