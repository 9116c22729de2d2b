using Garden.Linux.Interop;

namespace Garden.Linux.Cgroups;

/// <summary>Chooses the OOM notification mechanism once, like <see cref="CgroupManager.Create"/>:
/// v1 an eventfd registered on memory.oom_control, v2 inotify on memory.events. It watches the container's process
/// cgroup (<see cref="CgroupTree.ProcessDir"/>), where the memory limit is and the kills happen (v1 counts a kill only
/// in the victim's own cgroup, and notifies an OOM of the container's cgroup to its children too); a container made before
/// that cgroup had a memory limit is watched on its own cgroup, where its limit is.
/// Every watch of one notifier is served by one thread (<see cref="OomWatcher"/>), not one thread per container.</summary>
public static class OomNotifier
{
    public static IOomNotifier Create(string parent, string cgroupRoot = "/sys/fs/cgroup") =>
        CgroupManager.IsUnified(cgroupRoot)
            ? new OomWatcherV2(handle => Limited(Path.Combine(cgroupRoot, parent, handle), "memory.events"))
            : new OomWatcherV1(handle => Limited(Path.Combine(cgroupRoot, "memory", parent, handle), "memory.oom_control"));

    internal static string Limited(string container, string file)
    {
        var work = Path.Combine(container, CgroupTree.ProcessDir);
        return File.Exists(Path.Combine(work, file)) ? work : container;
    }
}

/// <summary>One watch: calls back once per increase of its cgroup's oom_kill counter. The counter, not the wake-up,
/// decides: v1's eventfd also fires when the cgroup is removed, and both fire for OOMs that killed nothing.
/// Exceptions thrown by the callback are swallowed so the watch survives them. Disposing it (also from its own callback)
/// stops it: no callback starts after Dispose returns.</summary>
internal sealed class OomWatch : IDisposable
{
    private readonly OomWatcher _owner;
    private readonly Action _onOomKill;
    private int _wakeUps;

    internal OomWatch(OomWatcher owner, ulong tag, string cgroupDir, Action onOomKill)
    {
        _owner = owner;
        Tag = tag;
        CgroupDir = cgroupDir;
        _onOomKill = onOomKill;
    }

    internal ulong Tag { get; }

    internal string CgroupDir { get; }

    /// <summary>The oom_kill count already reported (or the baseline taken when the watch began).</summary>
    internal ulong Seen { get; set; }

    /// <summary>Set by the watcher under its lock: disposed (no more callbacks), or ended (its cgroup is gone).</summary>
    internal bool Disposed { get; set; }

    internal bool Ended { get; set; }

    /// <summary>Until when a wake-up without a new kill keeps re-reading the count (v1), or null.</summary>
    internal DateTime? SettleUntil { get; set; }

    /// <summary>v1: its eventfd. v2: its inotify watch descriptor.</summary>
    internal SafeFd? EventFd { get; init; }

    internal int Wd { get; init; }

    /// <summary>How often the kernel woke the watch (for tests: a removal wakes v1 without a kill).</summary>
    internal int WakeUps => Volatile.Read(ref _wakeUps);

    internal void CountWakeUp() => Interlocked.Increment(ref _wakeUps);

    internal void Call()
    {
        try { _onOomKill(); }
        catch (Exception) { /* the owner's problem; the watch goes on */ }
    }

    public void Dispose() => _owner.Release(this);
}

/// <summary>One thread for every watch of a notifier: it waits in epoll on the watches' kernel objects (v1: an eventfd
/// each; v2: one inotify instance) and on an eventfd of its own that wakes it when the last watch is gone. The thread and
/// its fds exist only while there are watches. State is guarded by one lock, held while callbacks run, so a Dispose from
/// another thread waits for a callback in progress and none starts after it.</summary>
internal abstract class OomWatcher(Func<string, string> cgroupDirOf) : IOomNotifier
{
    private const ulong WakeTag = 0;
    private static readonly TimeSpan SettlePoll = TimeSpan.FromMilliseconds(20);

    private readonly object _gate = new();
    private readonly Dictionary<ulong, OomWatch> _watches = [];
    private readonly List<OomWatch> _settling = [];
    private ulong _nextTag = 2; // 0: the wake eventfd, 1: the v2 inotify instance
    private Thread? _thread;
    private SafeFd? _wake;

    /// <summary>The epoll instance while the thread runs.</summary>
    protected SafeFd? Epoll { get; private set; }

    /// <summary>How long to keep reading the count after a wake-up (v1 signals before the OOM killer has picked its victim).</summary>
    protected virtual TimeSpan Settle => TimeSpan.Zero;

    /// <summary>The kernel's oom_kill count of the cgroup now; null when the cgroup is gone.</summary>
    protected abstract ulong? ReadOomKills(string cgroupDir);

    /// <summary>What of a new watch can be made before the lock is taken (v1: its eventfd, registered on the cgroup, and
    /// the baseline count), or null. Made under the lock, each watch's syscalls held every other Watch (a restart starts
    /// them all at once, each on a pool thread) and the watcher's thread behind it.</summary>
    protected virtual object? Prepare(string cgroupDir) => null;

    /// <summary>Releases what <see cref="Prepare"/> made for a watch that was not opened.</summary>
    protected virtual void Discard(object prepared) { }

    /// <summary>Makes the kernel object of a new watch (or takes the one <paramref name="prepared"/>) and adds it to
    /// <see cref="Epoll"/> (under the lock); returns the watch with its baseline count.</summary>
    protected abstract OomWatch Open(string cgroupDir, ulong tag, Action onOomKill, object? prepared);

    /// <summary>Releases a watch's kernel object (under the lock; after its cgroup is gone too).</summary>
    protected abstract void Close(OomWatch watch);

    /// <summary>An fd of this watcher other than the wake eventfd is readable (under the lock).</summary>
    protected abstract void OnReady(ulong tag);

    /// <summary>Makes what the watcher shares between watches, after the epoll instance (under the lock).</summary>
    protected virtual void OnStart() { }

    /// <summary>Releases what <see cref="OnStart"/> made (under the lock).</summary>
    protected virtual void OnStop() { }

    protected OomWatch? Find(ulong tag) => _watches.GetValueOrDefault(tag);

    protected IEnumerable<OomWatch> All => _watches.Values;

    public IDisposable Watch(string handle, Action onOomKill)
    {
        var dir = cgroupDirOf(handle);
        var prepared = Prepare(dir);
        lock (_gate)
        {
            if (Epoll is null)
            {
                Epoll = Sys.EpollCreate();
                _wake = Sys.Eventfd(0, nonBlocking: true);
                Sys.EpollAdd(Epoll, _wake, WakeTag, "oom watcher wake eventfd");
                OnStart();
            }
            OomWatch watch;
            try
            {
                watch = Open(dir, _nextTag++, onOomKill, prepared);
            }
            catch
            {
                if (prepared is not null) Discard(prepared);
                if (_thread is null && _watches.Count == 0) StopLocked();
                throw;
            }
            _watches.Add(watch.Tag, watch);
            if (_thread is null)
            {
                var epoll = Epoll;
                _thread = new Thread(() => Run(epoll)) { IsBackground = true, Name = "oom-watch" };
                _thread.Start();
            }
            return watch;
        }
    }

    internal void Release(OomWatch watch)
    {
        lock (_gate)
        {
            if (watch.Disposed) return;
            watch.Disposed = true;
            _watches.Remove(watch.Tag);
            _settling.Remove(watch);
            Close(watch);
            if (_watches.Count == 0 && _wake is not null) Sys.EventfdWrite(_wake, 1); // the thread ends
        }
    }

    /// <summary>A watch's fd was readable, or inotify reported a modification: reads the count and calls back once per new
    /// kill; without one, v1 keeps reading for <see cref="Settle"/>.</summary>
    protected void WokeUp(OomWatch watch)
    {
        if (watch.Disposed || watch.Ended) return;
        watch.CountWakeUp();
        if (Check(watch) || Settle <= TimeSpan.Zero) return;
        watch.SettleUntil = DateTime.UtcNow + Settle;
        if (!_settling.Contains(watch)) _settling.Add(watch);
    }

    /// <summary>The watch's cgroup is gone: no more events will come for it.</summary>
    protected void End(OomWatch watch)
    {
        if (watch.Ended) return;
        watch.Ended = true;
        _settling.Remove(watch);
        if (!watch.Disposed) Close(watch);
    }

    /// <summary>True when the count moved (the kills were reported) or the cgroup is gone.</summary>
    private bool Check(OomWatch watch)
    {
        var now = ReadOomKills(watch.CgroupDir);
        if (now is null)
        {
            End(watch);
            return true;
        }
        if (now <= watch.Seen) return false;
        var kills = now.Value - watch.Seen;
        watch.Seen = now.Value;
        for (ulong i = 0; i < kills && !watch.Disposed; i++) watch.Call();
        return true;
    }

    private void Run(SafeFd epoll)
    {
        Span<EpollReady> ready = stackalloc EpollReady[64];
        while (true)
        {
            int timeout;
            lock (_gate)
            {
                if (_watches.Count == 0)
                {
                    StopLocked();
                    return;
                }
                timeout = _settling.Count > 0 ? (int)SettlePoll.TotalMilliseconds : -1;
            }
            int n;
            try
            {
                n = Sys.EpollWait(epoll, ready, timeout);
            }
            catch (LinuxException)
            {
                Thread.Sleep(1000); // not with a live epoll fd and a valid buffer; the watches stay in it, so wait on
                continue;
            }
            lock (_gate)
            {
                for (var i = 0; i < n; i++)
                {
                    try
                    {
                        if (ready[i].Tag == WakeTag) Sys.EventfdTryRead(_wake!);
                        else OnReady(ready[i].Tag);
                    }
                    catch (Exception e) when (e is LinuxException or IOException or ObjectDisposedException) { }
                }
                if (_settling.Count == 0) continue;
                var now = DateTime.UtcNow;
                foreach (var watch in _settling.ToArray())
                {
                    if (Check(watch) || now >= watch.SettleUntil) _settling.Remove(watch);
                }
            }
        }
    }

    private void StopLocked()
    {
        OnStop();
        _wake?.Dispose();
        Epoll?.Dispose();
        _wake = null;
        Epoll = null;
        _thread = null;
        _settling.Clear();
    }
}

/// <summary>cgroup v1: an eventfd per watch, registered through cgroup.event_control on memory.oom_control.</summary>
internal sealed class OomWatcherV1(Func<string, string> cgroupDirOf) : OomWatcher(cgroupDirOf)
{
    protected override TimeSpan Settle => TimeSpan.FromSeconds(1);

    protected override ulong? ReadOomKills(string cgroupDir)
    {
        try { return CgroupFile.ReadKey(Path.Combine(cgroupDir, "memory.oom_control"), "oom_kill"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    private sealed record Registered(SafeFd EventFd, ulong Baseline);

    /// <summary>The baseline count, then the eventfd registered on memory.oom_control (outside the lock).</summary>
    protected override object Prepare(string cgroupDir)
    {
        var baseline = ReadOomKills(cgroupDir) ?? throw new DirectoryNotFoundException($"no memory cgroup {cgroupDir}");
        var efd = Sys.Eventfd(0, nonBlocking: true);
        try
        {
            using (var oomControl = File.OpenHandle(Path.Combine(cgroupDir, "memory.oom_control"), FileMode.Open, FileAccess.Read))
                Sys.RegisterCgroupEvent(Path.Combine(cgroupDir, "cgroup.event_control"), efd, oomControl);
        }
        catch
        {
            efd.Dispose();
            throw;
        }
        return new Registered(efd, baseline);
    }

    protected override void Discard(object prepared) => ((Registered)prepared).EventFd.Dispose();

    protected override OomWatch Open(string cgroupDir, ulong tag, Action onOomKill, object? prepared)
    {
        var (efd, baseline) = (Registered)prepared!;
        Sys.EpollAdd(Epoll!, efd, tag, cgroupDir); // level-triggered: an OOM since the registration is seen at once
        return new OomWatch(this, tag, cgroupDir, onOomKill) { EventFd = efd, Seen = baseline };
    }

    protected override void OnReady(ulong tag)
    {
        if (Find(tag) is not { } watch) return;
        Sys.EventfdTryRead(watch.EventFd!);
        WokeUp(watch);
    }

    protected override void Close(OomWatch watch)
    {
        var efd = watch.EventFd!;
        if (efd.IsClosed) return;
        try { Sys.EpollRemove(Epoll!, efd, watch.CgroupDir); }
        finally { efd.Dispose(); }
    }
}

/// <summary>cgroup v2: one inotify instance for every watch, IN_MODIFY on each memory.events (the kernel documents a
/// file-modified event on every change; inotify works on cgroupfs and on the regular files of a fake cgroupfs alike).
/// Watches of the same file share the kernel's watch descriptor; it is removed with the last of them.</summary>
internal sealed class OomWatcherV2(Func<string, string> cgroupDirOf) : OomWatcher(cgroupDirOf)
{
    private const ulong InotifyTag = 1;
    private readonly Dictionary<int, List<OomWatch>> _byWd = [];
    private SafeFd? _inotify;

    protected override ulong? ReadOomKills(string cgroupDir)
    {
        try { return CgroupFile.ReadKey(Path.Combine(cgroupDir, "memory.events"), "oom_kill"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    protected override void OnStart()
    {
        _inotify = Sys.InotifyInit(nonBlocking: true);
        Sys.EpollAdd(Epoll!, _inotify, InotifyTag, "oom watcher inotify");
    }

    protected override void OnStop()
    {
        _inotify?.Dispose();
        _inotify = null;
        _byWd.Clear();
    }

    protected override OomWatch Open(string cgroupDir, ulong tag, Action onOomKill, object? prepared)
    {
        var wd = Sys.InotifyAddWatch(_inotify!, Path.Combine(cgroupDir, "memory.events"), InotifyMask.Modify);
        var watch = new OomWatch(this, tag, cgroupDir, onOomKill) { Wd = wd };
        if (!_byWd.TryGetValue(wd, out var sharing)) _byWd[wd] = sharing = [];
        sharing.Add(watch);
        watch.Seen = ReadOomKills(cgroupDir) ?? 0; // after the watch is in place: a kill in between is not lost
        return watch;
    }

    /// <summary>A modification read together with IN_IGNORED (the file deleted) is still checked once.</summary>
    protected override void OnReady(ulong tag)
    {
        foreach (var (wd, mask) in Sys.InotifyDrain(_inotify!))
        {
            if ((mask & InotifyMask.QueueOverflow) != 0)
            {
                foreach (var watch in All.ToArray()) WokeUp(watch); // events were lost: every count is read
                continue;
            }
            if (!_byWd.TryGetValue(wd, out var sharing)) continue; // removed by Dispose
            var watches = sharing.ToArray();
            if ((mask & InotifyMask.Modify) != 0)
                foreach (var watch in watches) WokeUp(watch);
            if ((mask & InotifyMask.Ignored) != 0)
            {
                _byWd.Remove(wd);
                foreach (var watch in watches) End(watch);
            }
        }
    }

    protected override void Close(OomWatch watch)
    {
        if (!_byWd.TryGetValue(watch.Wd, out var sharing) || !sharing.Remove(watch) || sharing.Count > 0) return;
        _byWd.Remove(watch.Wd);
        if (_inotify is not null) Sys.InotifyRmWatch(_inotify, watch.Wd); // false when the kernel removed it already
    }
}
