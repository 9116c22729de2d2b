using Garden.Linux.Interop;

namespace Garden.Linux.Cgroups;

/// <summary>Chooses the OOM notification mechanism once, like <see cref="CgroupManager.Create"/>:
/// v1 an eventfd registered on memory.oom_control, v2 inotify on memory.events. It watches the container's process
/// cgroup (<see cref="CgroupTree.ProcessDir"/>), where the memory limit is and the kills happen (v1 counts a kill only
/// in the victim's own cgroup, and notifies an OOM of the container's cgroup to its children too); a container made before
/// that cgroup had a memory limit is watched on its own cgroup, where its limit is.</summary>
public static class OomNotifier
{
    public static IOomNotifier Create(string parent, string cgroupRoot = "/sys/fs/cgroup") =>
        CgroupManager.IsUnified(cgroupRoot)
            ? new Notifier((handle, cb) => new OomWatchV2(Limited(Path.Combine(cgroupRoot, parent, handle), "memory.events"), cb))
            : new Notifier((handle, cb) => new OomWatchV1(Limited(Path.Combine(cgroupRoot, "memory", parent, handle), "memory.oom_control"), cb));

    internal static string Limited(string container, string file)
    {
        var work = Path.Combine(container, CgroupTree.ProcessDir);
        return File.Exists(Path.Combine(work, file)) ? work : container;
    }

    private sealed class Notifier(Func<string, Action, IDisposable> watch) : IOomNotifier
    {
        public IDisposable Watch(string handle, Action onOomKill) => watch(handle, onOomKill);
    }
}

/// <summary>A watch thread that calls back once per increase of an oom_kill counter. The counter, not the wake-up,
/// decides: v1's eventfd also fires when the cgroup is removed, and both fire for OOMs that killed nothing.
/// Exceptions thrown by the callback are swallowed so the watch survives them.</summary>
internal abstract class OomWatch : IDisposable
{
    private readonly Action _onOomKill;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _stop = new();
    private ulong _seen;
    private int _disposed;
    private int _wakeUps;
    private bool _releaseOnExit;

    protected OomWatch(string cgroupDir, Action onOomKill)
    {
        CgroupDir = cgroupDir;
        _onOomKill = onOomKill;
        _thread = new Thread(Run) { IsBackground = true, Name = $"oom-watch {Path.GetFileName(cgroupDir)}" };
    }

    protected string CgroupDir { get; }

    protected bool Stopping => Volatile.Read(ref _disposed) != 0;

    /// <summary>How often the kernel woke the watch (for tests: a removal wakes v1 without a kill).</summary>
    internal int WakeUps => Volatile.Read(ref _wakeUps);

    /// <summary>Takes the current count as the baseline and starts the thread (call at the end of the constructor).</summary>
    protected void Start(ulong baseline)
    {
        _seen = baseline;
        _thread.Start();
    }

    /// <summary>Blocks until the kernel signals; false when the watch is over (disposed, or the cgroup is gone).</summary>
    protected abstract bool WaitForEvent();

    /// <summary>The kernel's oom_kill count now; null when the cgroup is gone.</summary>
    protected abstract ulong? ReadOomKills();

    /// <summary>Wakes the thread out of <see cref="WaitForEvent"/> so it sees <see cref="Stopping"/>.</summary>
    protected abstract void Wake();

    protected abstract void ReleaseHandles();

    /// <summary>How long to wait for the count after a wake-up (v1 signals before the OOM killer has picked its victim).</summary>
    protected virtual TimeSpan Settle => TimeSpan.Zero;

    private void Run()
    {
        try
        {
            while (!Stopping && WaitForEvent() && !Stopping)
            {
                Interlocked.Increment(ref _wakeUps);
                var deadline = DateTime.UtcNow + Settle;
                while (true)
                {
                    var now = ReadOomKills();
                    if (now is null) return;
                    if (now > _seen)
                    {
                        var kills = now.Value - _seen;
                        _seen = now.Value;
                        for (ulong i = 0; i < kills && !Stopping; i++) Call();
                        break;
                    }
                    if (DateTime.UtcNow >= deadline || _stop.Wait(20)) break;
                }
            }
        }
        catch (ObjectDisposedException) when (Stopping) { }
        finally
        {
            if (Volatile.Read(ref _releaseOnExit)) ReleaseHandles();
        }
    }

    private void Call()
    {
        try { _onOomKill(); }
        catch (Exception) { /* the owner's problem; the watch goes on */ }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Set();
        Wake();
        if (Thread.CurrentThread == _thread)
        {
            // Disposed from inside the callback: the thread ends at its next Stopping check and releases the handles then.
            Volatile.Write(ref _releaseOnExit, true);
            return;
        }
        if (_thread.IsAlive) _thread.Join();
        ReleaseHandles();
    }
}

/// <summary>cgroup v1: an eventfd registered through cgroup.event_control on memory.oom_control.</summary>
internal sealed class OomWatchV1 : OomWatch
{
    private readonly SafeFd _efd;

    public OomWatchV1(string cgroupDir, Action onOomKill) : base(cgroupDir, onOomKill)
    {
        var baseline = ReadOomKills() ?? throw new DirectoryNotFoundException($"no memory cgroup {cgroupDir}");
        _efd = Sys.Eventfd(0);
        try
        {
            using var oomControl = File.OpenHandle(Path.Combine(cgroupDir, "memory.oom_control"), FileMode.Open, FileAccess.Read);
            Sys.RegisterCgroupEvent(Path.Combine(cgroupDir, "cgroup.event_control"), _efd, oomControl);
        }
        catch
        {
            _efd.Dispose();
            throw;
        }
        Start(baseline);
    }

    protected override TimeSpan Settle => TimeSpan.FromSeconds(1);

    protected override bool WaitForEvent()
    {
        Sys.EventfdRead(_efd);
        return true;
    }

    protected override ulong? ReadOomKills()
    {
        try { return CgroupFile.ReadKey(Path.Combine(CgroupDir, "memory.oom_control"), "oom_kill"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    protected override void Wake() => Sys.EventfdWrite(_efd, 1);

    protected override void ReleaseHandles() => _efd.Dispose();
}

/// <summary>cgroup v2: inotify IN_MODIFY on memory.events (the kernel documents a file-modified event on every
/// change; inotify works on cgroupfs and on the regular files of a fake cgroupfs alike).</summary>
internal sealed class OomWatchV2 : OomWatch
{
    private readonly SafeFd _inotify;
    private readonly int _wd;

    public OomWatchV2(string cgroupDir, Action onOomKill) : base(cgroupDir, onOomKill)
    {
        _inotify = Sys.InotifyInit();
        try
        {
            _wd = Sys.InotifyAddWatch(_inotify, Path.Combine(cgroupDir, "memory.events"), InotifyMask.Modify);
        }
        catch
        {
            _inotify.Dispose();
            throw;
        }
        Start(ReadOomKills() ?? 0); // after the watch is in place: a kill in between is not lost
    }

    private bool _gone;

    /// <summary>False once the watch is gone (IN_IGNORED: memory.events deleted, or removed by Dispose); a modification
    /// read together with IN_IGNORED is still checked once.</summary>
    protected override bool WaitForEvent()
    {
        if (_gone) return false;
        var mask = Sys.InotifyRead(_inotify);
        _gone = (mask & InotifyMask.Ignored) != 0;
        return (mask & InotifyMask.Modify) != 0 || !_gone;
    }

    protected override ulong? ReadOomKills()
    {
        try { return CgroupFile.ReadKey(Path.Combine(CgroupDir, "memory.events"), "oom_kill"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    protected override void Wake() => Sys.InotifyRmWatch(_inotify, _wd);

    protected override void ReleaseHandles() => _inotify.Dispose();
}
