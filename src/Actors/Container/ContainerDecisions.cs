using System.Collections.Immutable;
using Garden.Actors.Events;
using Garden.Actors.Host;
using Garden.Actors.Kernel;
using Garden.Actors.Process;
using Garden.Linux.Network;
using Garden.Protocol.Journal;

namespace Garden.Actors.Container;

/// <summary>The decisions of a container, plain functions of its state: a request (checked against
/// <see cref="ContainerTransitions"/> first) or an effect's outcome becomes the events to journal, the effect to run,
/// the answer, what to publish and what to log. No I/O, no clock but the one given, no actor. A request arrives checked
/// by <see cref="Requests.Problem"/> at the host (names, ranges, rules): what is decided here depends on the container's
/// state (its phase, whether it has a network or a disk limit, its properties).</summary>
public sealed partial record ContainerState
{
    /// <summary>The phase its lifecycle puts it in (the actor refines it: Recovering, Changing, Gone).</summary>
    public ContainerPhase Phase => Lifecycle switch
    {
        ContainerLifecycle.Creating when Spec is null => ContainerPhase.New,
        ContainerLifecycle.Creating => ContainerPhase.Creating,
        ContainerLifecycle.Active => ContainerPhase.Active,
        ContainerLifecycle.Stopping => ContainerPhase.Stopping,
        ContainerLifecycle.Stopped => ContainerPhase.Stopped,
        ContainerLifecycle.Destroying => ContainerPhase.Destroying,
        ContainerLifecycle.Destroyed => ContainerPhase.Gone,
        _ => ContainerPhase.Broken,
    };

    /// <summary>Where its root is mounted: as journaled (builds before user namespaces mounted it in the depot).</summary>
    public string RootfsMount => Rootfs.Length > 0 ? Rootfs : Defaults.MountPoint;

    private static CreateCompleted Completed(Kernel.CreatedRoot made, DateTimeOffset now) =>
        new() { RootfsMount = made.Mount, CreatedUnixMs = now.ToUnixTimeMilliseconds(), Image = made.Image?.ToRecord() };

    /// <summary>Decides a request in <paramref name="phase"/>, or an effect's outcome (<see cref="EffectDone"/>,
    /// <see cref="EffectFailed"/>), at <paramref name="now"/>.</summary>
    public Decision Decide(ContainerPhase phase, object command, DateTimeOffset now)
    {
        switch (command)
        {
            case EffectDone done: return Outcome(phase, done.Effect, done.Value, null, now);
            case EffectFailed failed: return Outcome(phase, failed.Effect, null, failed.Error, now);
        }
        if (ContainerTransitions.KindOf(command) is not { } kind)
            return Decision.Fail(new GardenException(ErrorKind.Internal, $"container {Handle}: {command.GetType().Name} is not a request for a container"));
        switch (ContainerTransitions.Check(phase, kind))
        {
            case Verdict.Allow: break;
            case Verdict.Stash: return Decision.Later;
            case Verdict.Ignore: return Decision.None;
            case var refused: return Decision.Fail(ContainerTransitions.Refusal(refused, this));
        }
        return command switch
        {
            // Its kernel work starts while CreateStarted is written: the host's registration, written before this actor
            // was told, already names the container, so a restart that finds no CreateStarted under it undoes by name
            // whatever of it was made (PlanRecovery), and the Create's outcome is decided only once the record is in.
            HostProtocol.CreateContainer c => new Decision
            {
                Events = [new CreateStarted { Spec = ToRecord(c.Spec) }], Effect = new Effect.Create(c.Spec, c.PoolEntry is not null), Await = true,
                EffectBeside = true,
            },
            ContainerProtocol.GetInfo => phase == ContainerPhase.Destroying ? Decision.Answer(Info([])) : Decision.Run(Effect.ListProcesses.Instance),
            ContainerProtocol.GetLimits => Decision.Answer(new ContainerProtocol.LimitsInForce(LimitsAsGiven)),
            ContainerProtocol.GetMetrics => Decision.Run(new Effect.ReadMetrics(Network, CreatedUnixMs, Spec?.Rootfs ?? "")),
            ContainerProtocol.GetProperties => Decision.Answer(new ContainerProtocol.PropertiesResult(Properties)),
            ContainerProtocol.GetProperty p => Properties.TryGetValue(p.Key, out var v) ? Decision.Answer(new ContainerProtocol.PropertyValue(v)) : Decision.Fail(NoProperty(p.Key)),
            ContainerProtocol.SetProperty p => Decision.Journal(new PropertySet { Key = p.Key, Value = p.Value }, HostProtocol.Done.Instance),
            ContainerProtocol.RemoveProperty p => Properties.ContainsKey(p.Key)
                ? Decision.Journal(new PropertyRemoved { Key = p.Key }, HostProtocol.Done.Instance)
                : Decision.Fail(NoProperty(p.Key)),
            ContainerProtocol.SetGraceTime g => Decision.Journal(new GraceTimeChanged { GraceTimeMs = (ulong)g.GraceTime.TotalMilliseconds }, HostProtocol.Done.Instance) with
            {
                Notes = [Note.Info($"grace time set to {Actors.GraceTime.Describe(g.GraceTime)}")],
            },
            ContainerProtocol.SetLimits l => ChangeLimits(l.Change),
            ContainerProtocol.ApplyNetIn n => Network is { } net
                ? Decision.Run(new Effect.AddNetIn(net, NetIn.Add(n.Mapping), NetOut, n.Mapping))
                : Decision.Fail(NoNetwork()),
            ContainerProtocol.NetOut n => AddNetOut(n.Rules),
            ContainerProtocol.RunProcess r => Run(r),
            ContainerProtocol.AttachProcess or ContainerProtocol.SignalProcess or ContainerProtocol.SetProcessTty => Decision.HandOn(command),
            ContainerProtocol.StopContainer s => phase == ContainerPhase.Stopped
                ? Decision.Answer(HostProtocol.Done.Instance)
                : new Decision { Events = [Changed(ContainerLifecycle.Stopping)], Effect = new Effect.Stop(s.Kill), Await = true },
            HostProtocol.DestroyContainer => phase == ContainerPhase.Destroying
                ? new Decision { Await = true } // joins the destroy in flight
                : new Decision { Events = [Changed(ContainerLifecycle.Destroying)], Effect = new Effect.Destroy(true, Network, StopOnly: true), Await = true },
            ContainerProtocol.GraceTimeUp => new Decision
            {
                Events = [Changed(ContainerLifecycle.Destroying, EventsProtocol.ContainerEvent.Reaped)], Effect = new Effect.Destroy(true, Network, StopOnly: true),
                Publish = [(EventsProtocol.ContainerEvent.Reaped, "")], Notes = [Note.Info($"reaped: idle for its grace time ({GraceTime})")],
            },
            ContainerProtocol.OomKilled or ContainerProtocol.OomFlush => Decision.HandOn(command),
            _ => throw new InvalidOperationException($"{command.GetType().Name} has a kind but no decision"),
        };
    }

    /// <summary>What a restarted daemon does with the container, given its journal alone and whether it can be trusted
    /// (<paramref name="quarantine"/>: why not). Release is a decision with nothing in it: the container is gone.</summary>
    public Decision Recover(string? quarantine)
    {
        if (quarantine is not null)
        {
            // no reconcile, no kernel work; broken with the reason, journaled once (a restart that finds it again adds nothing)
            var reason = $"{quarantine}; destroy it";
            return new Decision
            {
                Events = Lifecycle == ContainerLifecycle.Broken && Events.Contains(reason) ? [] : [Changed(ContainerLifecycle.Broken, reason)],
                Publish = [(EventsProtocol.ContainerEvent.Broken, reason)], Notes = [Note.Error($"broken: {reason}")],
            };
        }
        switch (PlanRecovery())
        {
            case RecoveryPlan.Release:
                return new Decision { Notes = [Note.Info("recovered: nothing to keep")] };
            case RecoveryPlan.Undo:
                return new Decision
                {
                    Events = [Changed(ContainerLifecycle.Destroying)], Effect = new Effect.Destroy(false, Network),
                    Notes = [Note.Info($"recovered mid-{(Lifecycle == ContainerLifecycle.Creating ? "create" : "destroy")}: releasing everything")],
                };
            default:
                var notes = ImmutableArray.Create(Note.Info($"recovered ({Describe(Lifecycle)}): reconciling with the kernel"));
                if (Spec is { EarlierHostRoot: true })
                    notes = notes.Add(Note.Warning("made by a build before user namespaces: it keeps running as host root until it is destroyed"));
                return new Decision
                {
                    Effect = new Effect.Reconcile(RootfsMount, Network, NetIn, NetOut, Watch: Lifecycle != ContainerLifecycle.Broken), Notes = notes,
                };
        }
    }

    private Decision Outcome(ContainerPhase phase, Effect effect, object? value, Exception? error, DateTimeOffset now)
    {
        switch (effect)
        {
            case Effect.Create when error is null && value is Kernel.CreatedRoot { Settling: true } started:
                // journaled while its agent starts; the Create is answered by what that comes to
                return new Decision
                {
                    Events = [Completed(started, now)], Effect = Effect.SettleCreate.Instance, Await = true, EffectBeside = true,
                };
            case Effect.Create or Effect.SettleCreate when error is null:
                return new Decision
                {
                    Events = effect is Effect.SettleCreate ? []
                        : [value is Kernel.CreatedRoot made ? Completed(made, now) : new CreateCompleted { RootfsMount = (string)value!, CreatedUnixMs = now.ToUnixTimeMilliseconds() }],
                    Reply = new HostProtocol.ContainerCreated(Handle), Publish = [(EventsProtocol.ContainerEvent.Created, "")],
                };
            case Effect.Create or Effect.SettleCreate when error is CreateUndoFailedException undo:
                // something of it may be left: it stays, broken, for a Destroy to finish
                var left = $"create failed ({undo.Cause.Message}) and undoing it failed ({undo.Teardown.Message}); destroy it";
                return new Decision
                {
                    Events = [Changed(ContainerLifecycle.Broken, left)], Error = GardenErrors.From(undo.Cause, Handle, "create"),
                    Publish = [(EventsProtocol.ContainerEvent.Broken, left)],
                };
            case Effect.Create or Effect.SettleCreate:
                return new Decision { Events = [Changed(ContainerLifecycle.Destroyed)], Error = GardenErrors.From(error!, Handle, "create") };
            case Effect.Reconcile:
                return AfterReconcile(value as KernelFindings ?? KernelFindings.Nothing, error, now);
            case Effect.Stop:
                // an agent that fails the stop runs nothing more for us: the container is stopped all the same
                return new Decision
                {
                    Events = [Changed(ContainerLifecycle.Stopped, "stopped")], Reply = HostProtocol.Done.Instance, Publish = [(EventsProtocol.ContainerEvent.Stopped, "")],
                    Notes = error is null ? [] : [Note.Warning($"stop: the agent failed ({error.Message}); stopped all the same")],
                };
            case Effect.Destroy when error is null:
                return new Decision
                {
                    Events = [Changed(ContainerLifecycle.Destroyed)], Reply = new HostProtocol.ContainerDestroyed(Handle), Publish = [(EventsProtocol.ContainerEvent.Destroyed, "")],
                };
            case Effect.Destroy:
                var why = $"destroy failed: {error!.Message}";
                return new Decision
                {
                    Events = [Changed(ContainerLifecycle.Broken, why)], Publish = [(EventsProtocol.ContainerEvent.Broken, why)],
                    Error = new GardenException(ErrorKind.Internal, $"destroy {Handle} failed: {error.Message}", error),
                };
            case Effect.ChangeLimits l when error is null:
                var given = l.Current.With(l.Change);
                return Decision.Journal(new LimitsChanged { Limits = ToRecord(given) }, new ContainerProtocol.LimitsInForce((this with { Limits = given }).LimitsAsGiven));
            case Effect.AddNetIn a when error is null:
                return Decision.Journal(new NetInAdded { Mapping = ToRecord(a.Mapping) }, new ContainerProtocol.NetInInForce(a.Mapping));
            case Effect.AddNetOut o when error is null:
                var added = new NetOutAdded();
                added.Rules.AddRange(o.Rules.Select(ToRecord));
                return Decision.Journal(added, HostProtocol.Done.Instance);
            case Effect.ListProcesses when error is null:
                return Decision.Answer(Info((ImmutableArray<string>)value!));
            case Effect.ListProcesses when error is ContainerInitGoneException gone && Lifecycle != ContainerLifecycle.Broken:
            {
                // found now, not at the next restart: broken with the reason, journaled, published; Info answers as it does
                // for any broken container
                var reason = $"{gone.Message}; destroy it";
                var broken = Changed(ContainerLifecycle.Broken, reason);
                return new Decision
                {
                    Events = [broken], Reply = Apply(broken).Info([]),
                    Publish = [(EventsProtocol.ContainerEvent.Broken, reason)], Notes = [Note.Error($"broken: {reason}")],
                };
            }
            case Effect.ListProcesses:
                // A broken container's agent is often gone: its info (and the reason in its events) still matters. A serving
                // container whose agent does not answer gets an error naming it, not a list of processes that may be wrong.
                return Lifecycle == ContainerLifecycle.Broken ? Decision.Answer(Info([])) : Decision.Fail(GardenErrors.From(error!, Handle, "listing processes"));
            case Effect.ReadMetrics when error is null:
                return Decision.Answer(value!);
            case Effect.CountOomKills c:
                return phase is ContainerPhase.Destroying or ContainerPhase.Gone ? Decision.None : OutOfMemory(c, value as ulong? ?? 0);
            default:
                return Decision.Fail(GardenErrors.From(error!, Handle, effect.Step ?? Reading(effect)));
        }
    }

    private static string Reading(Effect effect) => effect switch
    {
        Effect.ReadMetrics => "reading metrics",
        _ => effect.GetType().Name,
    };

    private Decision AfterReconcile(KernelFindings findings, Exception? error, DateTimeOffset now)
    {
        var couldNotRead = error is null ? [] : ImmutableArray.Create(Note.Error($"reconcile could not read the kernel's state: {error.Message}"));
        if (findings.Problem is { } problem)
        {
            var found = new Reconciled { Healthy = false, Finding = problem, DaemonVersion = HostActor.Version, AtUnixMs = now.ToUnixTimeMilliseconds() };
            return new Decision
            {
                Events = Lifecycle == ContainerLifecycle.Broken ? [found] : [found, Changed(ContainerLifecycle.Broken, problem)],
                Publish = [(EventsProtocol.ContainerEvent.Broken, problem)], Notes = couldNotRead.Add(Note.Warning($"reconcile: {problem}")),
            };
        }
        var reattached = new Decision { Publish = [(EventsProtocol.ContainerEvent.Reattached, "")], Notes = [Note.Info("reconcile: reattached")] };
        // died mid-stop: finish it (KILL whatever is left)
        return Lifecycle == ContainerLifecycle.Stopping ? reattached with { Effect = new Effect.Stop(Kill: true) } : reattached;
    }

    /// <summary>One record (and one event) for the kills of one report; the cgroup's own count when it could be read.</summary>
    private Decision OutOfMemory(Effect.CountOomKills report, ulong total)
    {
        var evt = new OutOfMemory { AtUnixMs = report.AtUnixMs, OomKills = total, Kills = report.Kills };
        var after = Apply(evt).OomKills;
        return new Decision
        {
            Events = [evt], Publish = [(EventsProtocol.ContainerEvent.OutOfMemory, $"{after} kill{(after == 1 ? "" : "s")} so far")],
            Notes = [Note.Warning($"out of memory: the kernel killed {report.Kills} process(es) since the last report ({total} so far)")],
        };
    }

    private Decision ChangeLimits(Limits change)
    {
        if (change.DiskBytes is not null && Limits.DiskBytes is null)
            return Decision.Fail(GardenException.Invalid("disk", $"container {Handle} was created without a disk limit; a disk limit can only be set at create"));
        if (change.BandwidthRate is not null && Network is null)
            return Decision.Fail(GardenException.Invalid("bandwidth", $"container {Handle} has no network to limit"));
        return Decision.Run(new Effect.ChangeLimits(change, Limits, Network, Spec?.Rootfs ?? ""));
    }

    private Decision AddNetOut(ImmutableArray<NetOutRule> rules)
    {
        if (Network is not { } net) return Decision.Fail(NoNetwork());
        return Decision.Run(new Effect.AddNetOut(net, NetIn, NetOut.AddRange(rules), rules));
    }

    /// <summary>A Run with its id (a fresh one when it names none), the container's environment merged with its own, and the
    /// daemon's default rlimits where it names none of them.</summary>
    private Decision Run(ContainerProtocol.RunProcess msg)
    {
        var spec = msg.Spec.Id.Length == 0 ? msg.Spec with { Id = Names.Generate() } : msg.Spec;
        // a pea starts in its image's root, as guardian's do, not in its user's home (which its image may not have)
        if (spec.IsPea && spec.Dir.Length == 0) spec = spec with { Dir = "/" };
        static string Key(string name) => RlimitNames.Canonical(name) ?? name;
        var asked = spec.Rlimits.Select(r => Key(r.Name)).ToHashSet();
        // the image's config gives defaults: its Env under the container's, its WorkingDir and User where the Run names none
        var env = EnvEntries.Merge(Image is { } image ? EnvEntries.Merge(image.Env, Spec?.Env ?? []) : Spec?.Env ?? [], spec.Env);
        // Garden's file tools are the agent's binary, a .NET program with its GC settings compiled in: a .NET knob the
        // container gives its own processes (a heap limit of a few MB, say) must not make a file transfer fail
        if (spec.Path == FileTransfers.AgentPath && !spec.IsPea) env = [.. env.Where(e => !Garden.Linux.Runtime.OciBundle.IsRuntimeKnob(e))];
        if (Image is { } i) spec = spec with { Dir = spec.Dir.Length > 0 ? spec.Dir : i.WorkingDir, User = spec.User.Length > 0 ? spec.User : i.User };
        if (ExecArgs.Problem(spec.Args, env) is { } tooLarge) return Decision.Fail(tooLarge);   // with the container's env
        return Decision.HandOn(msg with
        {
            Spec = spec with
            {
                Env = env,
                Rlimits = spec.Rlimits.AddRange(Defaults.Rlimits.Where(d => !asked.Contains(Key(d.Name)))),
            },
        });
    }

    private GardenException NoProperty(string key) => new(ErrorKind.NotFound, $"container {Handle} has no property \"{key}\"");

    private GardenException NoNetwork() => new(ErrorKind.FailedPrecondition, $"container {Handle} has no network");

    /// <summary>The one definition of a container's limits as Info and CurrentLimits (and a Limit's answer) report them:
    /// as given — by the Create, garden.default-limits where it named none, and every Limit since — with null (0 on the
    /// wire) for none, as Garden's CurrentXLimits echo what the container was given. Not the kernel's read-back: that
    /// differs in ways no caller asked for (a disk file system's size is less than the limit by ext4's own blocks, memory
    /// is rounded to pages, an unset CPU weight reads as the kernel's default 1024); Metrics shows what the kernel holds.
    /// One exception: a bandwidth limit given without a burst shows the burst it got (<see cref="Limits.ToBandwidth"/>).</summary>
    public Limits LimitsAsGiven => Limits with { BandwidthBurst = Limits.ToBandwidth()?.BurstBytes };

    public ContainerProtocol.ContainerInfo Info(ImmutableArray<string> processIds) => new(Handle, Lifecycle, Events,
        Defaults.MountPointByHandle is { } byHandle && RootfsMount == Defaults.MountPoint ? byHandle : RootfsMount, processIds, Image is null ? Properties : Properties.SetItems(Image.InfoProperties()), Spec?.Rootfs ?? "", Spec?.Privileged ?? false,
        LimitsAsGiven, Network, NetIn,
        Spec?.BindMountsOrEmpty ?? [], GraceTime, OomKills,
        LastOomUnixMs == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(LastOomUnixMs),
        Spec?.UserNamespace);
}
