using System.Collections.Concurrent;

namespace Garden.Actors.Kernel;

/// <summary>The kernel work of the Creates in flight, by the name their kernel objects go by, shared by every container
/// actor of the daemon. A container's Create runs beside the write of its CreateStarted (and its agent's start beside
/// the write of CreateCompleted); when a write fails the actor stops and the host recovers it from its journal, and the
/// undo or reconcile of that new actor waits here until the work the stopped one started has ended, so it never tears
/// down a container that a runc still in flight then makes.</summary>
public sealed class CreatesInFlight
{
    private readonly ConcurrentDictionary<string, Task> _work = new();

    /// <summary>Follows <paramref name="work"/> of <paramref name="name"/> until it ends.</summary>
    public void Follow(string name, Task work)
    {
        var ended = _work.AddOrUpdate(name, work, (_, before) => before.IsCompleted ? work : Task.WhenAll(before, work));
        ended.ContinueWith(_ => _work.TryRemove(KeyValuePair.Create(name, ended)), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Completes when every Create's work on <paramref name="name"/> followed so far has ended (however it ended).</summary>
    public Task EndOf(string name) =>
        _work.TryGetValue(name, out var work) && !work.IsCompleted
            ? work.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)
            : Task.CompletedTask;
}
