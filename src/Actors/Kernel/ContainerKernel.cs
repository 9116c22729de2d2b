using System.Collections.Immutable;
using System.Diagnostics;
using Garden.Actors.Container;
using Garden.Linux.Network;

namespace Garden.Actors.Kernel;

/// <summary>Everything one container asks of the kernel, behind one call: <see cref="RunAsync"/> runs an
/// <see cref="Effect"/> (off the actor thread; the shell hands it to Task.Run) and returns its outcome. It also holds what
/// follows a live container — the kernel's OOM notification and the agent's log — from its create or reconcile until its
/// destroy (or until the actor stops).</summary>
public sealed class ContainerKernel
{
    private readonly KernelContext _k;
    private readonly ContainerCreator _creator;
    private Task? _settling; // the rest of a Create in flight (ContainerCreator.BeginAsync)
    private readonly ContainerDestroyer _destroyer;
    private readonly ContainerReconciler _reconciler;
    private readonly Action _onOomKill;
    private IDisposable? _oomWatch;
    private IAsyncDisposable? _agentLog;

    /// <param name="onOomKill">called (on the notifier's thread) each time the kernel kills a process of the container
    /// for want of memory</param>
    public ContainerKernel(KernelContext context, Action onOomKill)
    {
        _k = context;
        _onOomKill = onOomKill;
        _destroyer = new ContainerDestroyer(context);
        _creator = new ContainerCreator(context, _destroyer);
        _reconciler = new ContainerReconciler(context);
    }

    public KernelContext Context => _k;

    /// <summary>The container's peas (processes with a root of their own).</summary>
    public PeaKernel Peas => _destroyer.Peas;

    /// <summary>Runs the effect and returns its outcome (see each effect). A transition is logged as a step.</summary>
    public async Task<object?> RunAsync(Effect effect)
    {
        if (!_k.Fx.KernelWorkAfter.IsCompleted) await _k.Fx.KernelWorkAfter.ConfigureAwait(false);
        // a Create that an earlier actor of this container started may still run (see CreatesInFlight)
        if (effect is Effect.Destroy or Effect.Reconcile && _k.Fx.Creates.EndOf(_k.Name) is { IsCompleted: false } earlier)
        {
            _k.Log.Info("waiting for the kernel work of a create still in flight");
            await earlier.ConfigureAwait(false);
        }
        if (effect.Step is not { } step) return await DispatchAsync(effect).ConfigureAwait(false);
        _k.Log.Info("{0} starting{1}", step, effect.Detail);
        var clock = Stopwatch.StartNew();
        try
        {
            var dispatched = DispatchAsync(effect);
            if (effect is Effect.Create) _k.Fx.Creates.Follow(_k.Name, dispatched);
            var outcome = await dispatched.ConfigureAwait(false);
            _k.Log.Info("{0} finished in {1:0.0} ms", step, clock.Elapsed.TotalMilliseconds);
            return outcome;
        }
        catch (Exception e)
        {
            _k.Log.Warning("{0} failed after {1:0.0} ms: {2}", step, clock.Elapsed.TotalMilliseconds, e.Message);
            throw;
        }
    }

    private async Task<object?> DispatchAsync(Effect effect)
    {
        var fx = _k.Fx;
        switch (effect)
        {
            case Effect.Create { FromPool: true } c:
                var taken = await _creator.TakeAsync(c.Spec).ConfigureAwait(false);
                StartWatches();
                return taken;
            case Effect.Create c:
                // the agent's start is waited for by the SettleCreate the container decides next, beside its journal write
                var (rootfs, settled) = await _creator.BeginAsync(c.Spec).ConfigureAwait(false);
                _settling = settled;
                _k.Fx.Creates.Follow(_k.Name, settled);
                return rootfs with { Settling = true };
            case Effect.SettleCreate:
                if (Interlocked.Exchange(ref _settling, null) is { } settling) await settling.ConfigureAwait(false);
                StartWatches();
                return null;
            case Effect.Reconcile r:
                var findings = await _reconciler.ReconcileAsync(r).ConfigureAwait(false);
                if (r.Watch && findings.Problem is null) StartWatches();
                return findings;
            case Effect.Stop s:
                // its peas' processes first, each through its own agent (which reports their exits); the container's agent
                // would KILL the peas' agents with everything else in the pid namespace
                var grace = s.Kill ? TimeSpan.Zero : _k.Settings.StopGrace;
                await Task.WhenAll(Peas.Existing().Select(id => ProcessStopper.StopAllAsync(Peas.AgentOf(id), grace))).ConfigureAwait(false);
                await ProcessStopper.StopAllAsync(_k.Agent, grace).ConfigureAwait(false);
                return null;
            case Effect.Destroy d:
                _k.Settings.Faults.Hit("destroy-started");
                Interlocked.Exchange(ref _oomWatch, null)?.Dispose();
                if (d.StopOnly) await _destroyer.StopAsync(d.Graceful, Interlocked.Exchange(ref _agentLog, null)).ConfigureAwait(false);
                else await _destroyer.DestroyAsync(d.Graceful, d.Network, Interlocked.Exchange(ref _agentLog, null)).ConfigureAwait(false);
                return null;
            case Effect.ChangeLimits l:
                fx.Cgroups.Apply(_k.Name, l.Change.ToCgroup());
                var after = l.Current.With(l.Change);
                if (after.DiskBytes is { } disk && (disk != l.Current.DiskBytes || after.DiskScope != l.Current.DiskScope))
                {
                    // a total-scope limit leaves the container's disk what its image does not take
                    var room = after.DiskRoom(disk, after.DiskScope == DiskScope.Total ? await _k.ImageBytesAsync(l.BaseRootfs).ConfigureAwait(false) : 0);
                    await fx.Disk.ResizeAsync(_k.Name, _k.Paths.Depot, room, CancellationToken.None).ConfigureAwait(false);
                }
                if (l.Change.BandwidthRate is not null && _k.Network(l.Network) is { } limited)
                    await fx.Network.SetBandwidthAsync(limited, l.Current.With(l.Change).ToBandwidth(), CancellationToken.None).ConfigureAwait(false);
                return null;
            case Effect.ChangeFirewall f:
                await fx.Firewall.ApplyAsync(KernelContext.Firewall(_k.Network(f.Network)!, f.NetIn, f.NetOut), CancellationToken.None).ConfigureAwait(false);
                return null;
            case Effect.ListProcesses:
                IReadOnlyList<Garden.Protocol.Agent.ProcessEntry> processes;
                try
                {
                    processes = await _k.Agent.ListAsync(CancellationToken.None).ConfigureAwait(false);
                }
                catch (Garden.Linux.Agent.AgentUnavailableException gone)
                {
                    // an agent that is not there: its init may have ended (`kill 1` from inside ends the agent, and with it
                    // every process of the container); the runtime says which
                    var state = await fx.Runtime.StateAsync(_k.Name, CancellationToken.None).ConfigureAwait(false);
                    if (state is not { Status: Garden.Linux.Runtime.OciStatus.Running })
                        throw new ContainerInitGoneException(state is null ? "no such container" : state.Status.ToString().ToLowerInvariant(), gone);
                    throw;
                }
                var running = processes.Where(p => !p.Exited).Select(p => p.Id).ToList();
                // and its peas' processes, each known to the pea's own agent
                foreach (var id in Peas.Existing())
                {
                    try
                    {
                        if ((await Peas.AgentOf(id).ListAsync(CancellationToken.None).ConfigureAwait(false)).Any(p => p.Id == id && !p.Exited))
                            running.Add(id);
                    }
                    catch (Exception e) when (e is Garden.Linux.Agent.AgentUnavailableException or Garden.Linux.Agent.AgentException)
                    {
                    }
                }
                return running.ToImmutableArray();
            case Effect.ReadMetrics m:
                var usage = fx.Disk.Usage(_k.Paths.Depot);
                var net = _k.Network(m.Network);
                // the image: the shared base rootfs, walked once per base (Garden's total disk use counts it)
                // (a base gone from under a running container leaves its image uncounted, not its metrics unreadable)
                ulong image = 0;
                if (m.BaseRootfs.Length > 0)
                    try { image = await _k.ImageBytesAsync(m.BaseRootfs).ConfigureAwait(false); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { _k.Log.Warning("the size of its base rootfs {0}: {1}", m.BaseRootfs, e.Message); }
                return new ContainerProtocol.ContainerMetrics(_k.Handle, fx.Cgroups.Metrics(_k.Name), usage?.Used ?? 0, usage?.Size ?? 0,
                    m.CreatedUnixMs == 0 ? TimeSpan.Zero : DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeMilliseconds(m.CreatedUnixMs),
                    net is null ? default : fx.Network.Counters(net), image);
            case Effect.CountOomKills:
                return fx.Cgroups.Metrics(_k.Name).OomKills;
            default:
                throw new ArgumentOutOfRangeException(nameof(effect), effect.GetType().Name, "not an effect of a container");
        }
    }

    /// <summary>Follows the live container: the kernel's OOM notification (re-armed after a restart) and the agent's log
    /// into depot/&lt;handle&gt;/agent.log (the agent holds no host file).</summary>
    private void StartWatches()
    {
        if (_oomWatch is null)
        {
            try
            {
                _oomWatch = _k.Fx.Oom.Watch(_k.Name, _onOomKill);
            }
            catch (Exception e)
            {
                _k.Log.Error(e, "cannot watch for OOM kills: {0}", e.Message);
            }
        }
        var log = _k.Log;
        _agentLog ??= _k.Agent.FollowLog(_k.Paths.AgentLog, problem => log.Warning("agent log: {0}", problem));
    }

    /// <summary>Stops following the container (its actor stops; the container itself lives on).</summary>
    public async Task StopWatchingAsync()
    {
        Interlocked.Exchange(ref _oomWatch, null)?.Dispose();
        if (Interlocked.Exchange(ref _agentLog, null) is { } agentLog) await agentLog.DisposeAsync().ConfigureAwait(false);
    }
}
