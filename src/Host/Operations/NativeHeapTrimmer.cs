using System.Runtime;
using Garden.Linux.Host;
using Microsoft.Extensions.Hosting;

namespace Garden.Host.Operations;

/// <summary>Gives the native heap's free pages back to the kernel (<see cref="INativeHeap.Trim"/>) once a second after
/// gardend did something: when the JIT compiled a method or the GC collected since the last look. An idle gardend costs
/// two counter reads a second; a busy one a trim a second (it walks the free chunks of each arena: measured 0.8-16 ms for a
/// 19 MB heap with 10,000 free chunks on this loaded host when there was something to give back, microseconds when not).
/// Without it, what the JIT and the runtime freed while containers were made stayed resident for good
/// (bench/FINDINGS-memory.md).</summary>
public sealed class NativeHeapTrimmer(INativeHeap heap, TimeSpan? period = null, Func<long>? activity = null) : IHostedService, IDisposable
{
    private readonly TimeSpan _period = period ?? TimeSpan.FromSeconds(1);
    private readonly Func<long> _activity = activity ?? (() => JitInfo.GetCompiledMethodCount() + GC.CollectionCount(0));
    private readonly object _gate = new();
    private Timer? _timer;
    private long _seen = -1;

    /// <summary>How many trims ran (for tests).</summary>
    public int Trims { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _timer = new Timer(_ => Tick(), null, _period, _period);
        return Task.CompletedTask;
    }

    /// <summary>One look: trims when the activity count moved since the last one.</summary>
    public void Tick()
    {
        lock (_gate)
        {
            var now = _activity();
            if (now == _seen) return;
            _seen = now;
            heap.Trim();
            Trims++;
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();
}
