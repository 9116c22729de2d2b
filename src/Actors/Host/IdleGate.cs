namespace Garden.Actors.Host;

/// <summary>The warm pool's low priority: a pool entry being made waits here before each of its steps while the host
/// says a user's work is in flight (a Create, Run, Destroy or release; see HostActor.UserWorkInFlight), so what the user
/// waits for does not share the CPU, the runtime or the firewall with the refill. It never waits longer than
/// <see cref="MaxWait"/> per step: a host busy without a pause still refills, slowly. Thread-safe: the host opens and
/// closes it on its thread, the entry's steps wait on theirs.</summary>
public sealed class IdleGate
{
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(2);

    private readonly object _lock = new();
    private TaskCompletionSource _open = Opened();

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    public bool IsOpen
    {
        get { lock (_lock) return _open.Task.IsCompleted; }
    }

    /// <summary>A user's work started: entries being made pause at their next step.</summary>
    public void Close()
    {
        lock (_lock)
            if (_open.Task.IsCompleted) _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Nothing of a user's is in flight: entries being made go on.</summary>
    public void Open()
    {
        lock (_lock) _open.TrySetResult();
    }

    /// <summary>Completes when the gate is open, or after <see cref="MaxWait"/>; true when it waited.</summary>
    public async Task<bool> WaitAsync()
    {
        Task open;
        lock (_lock) open = _open.Task;
        if (open.IsCompleted) return false;
        await Task.WhenAny(open, Task.Delay(MaxWait)).ConfigureAwait(false);
        return true;
    }
}
