using Garden.Actors.Host;

namespace Garden.Actors.Container;

/// <summary>Where a container is, as its transition table sees it: its journaled lifecycle, refined by what its actor
/// knows — not created yet (New), reconciling after a restart (Recovering), a live change in flight (Changing), or
/// released (Gone).</summary>
public enum ContainerPhase { New, Recovering, Creating, Active, Changing, Stopping, Stopped, Destroying, Broken, Gone }

/// <summary>What a request (or a signal of the container's own: its grace time is up, the kernel killed a process for
/// want of memory) asks, as the table sees it.</summary>
public enum CommandKind
{
    Create,
    Info,     // GetInfo
    Read,     // GetLimits, GetMetrics, GetProperties, GetProperty
    Edit,     // SetProperty, RemoveProperty, SetGraceTime: journaled, nothing in the kernel
    Change,   // SetLimits, ApplyNetIn, NetOut: live changes in the kernel
    Run,      // RunProcess
    Process,  // AttachProcess, SignalProcess, SetProcessTty
    Stop,
    Destroy,
    Reap,     // its grace time is up
    Oom,      // an OOM kill to report
}

/// <summary>What the table says of a request in a phase: take it, keep it for later (stash), drop it (a signal that no
/// longer matters), or refuse it with one of the errors.</summary>
public enum Verdict { Allow, Stash, Ignore, UnknownHandle, AlreadyExists, CannotRun, BeingDestroyed, Broken }

/// <summary>The one transition table of a container: for each phase and each kind of request, whether it is taken,
/// kept for later, dropped, or refused (and with which error). <see cref="ContainerState.Decide"/> consults it first;
/// what a taken request does is decided there.</summary>
public static class ContainerTransitions
{
    private const Verdict A = Verdict.Allow, S = Verdict.Stash, I = Verdict.Ignore, U = Verdict.UnknownHandle,
        E = Verdict.AlreadyExists, R = Verdict.CannotRun, D = Verdict.BeingDestroyed, B = Verdict.Broken;

    private static readonly Verdict[,] Table =
    {
        //              Create Info Read Edit Change Run Process Stop Destroy Reap Oom
        /* New        */ { A,   U,   U,   U,   U,     U,  U,      U,   U,      I,   I },
        /* Recovering */ { E,   S,   S,   S,   S,     S,  S,      S,   S,      I,   S },
        /* Creating   */ { E,   S,   S,   S,   S,     S,  S,      S,   S,      I,   S },
        /* Active     */ { E,   A,   A,   A,   A,     A,  A,      A,   A,      A,   A },
        /* Changing   */ { E,   S,   S,   S,   S,     S,  S,      S,   S,      I,   S },
        /* Stopping   */ { E,   A,   A,   A,   S,     R,  A,      S,   S,      I,   A },
        /* Stopped    */ { E,   A,   A,   A,   A,     R,  A,      A,   A,      A,   A },
        /* Destroying */ { E,   A,   D,   D,   D,     D,  D,      D,   A,      I,   I },
        /* Broken     */ { E,   A,   A,   A,   B,     B,  B,      B,   A,      A,   A },
        /* Gone       */ { U,   U,   U,   U,   U,     U,  U,      U,   U,      I,   I },
    };

    public static Verdict Check(ContainerPhase phase, CommandKind kind) => Table[(int)phase, (int)kind];

    /// <summary>The kind of a request; null for a message that is not one.</summary>
    public static CommandKind? KindOf(object command) => command switch
    {
        HostProtocol.CreateContainer => CommandKind.Create,
        ContainerProtocol.GetInfo => CommandKind.Info,
        ContainerProtocol.GetLimits or ContainerProtocol.GetMetrics or ContainerProtocol.GetProperties or ContainerProtocol.GetProperty => CommandKind.Read,
        ContainerProtocol.SetProperty or ContainerProtocol.RemoveProperty or ContainerProtocol.SetGraceTime => CommandKind.Edit,
        ContainerProtocol.SetLimits or ContainerProtocol.ApplyNetIn or ContainerProtocol.NetOut => CommandKind.Change,
        ContainerProtocol.RunProcess => CommandKind.Run,
        ContainerProtocol.AttachProcess or ContainerProtocol.SignalProcess or ContainerProtocol.SetProcessTty => CommandKind.Process,
        ContainerProtocol.StopContainer => CommandKind.Stop,
        HostProtocol.DestroyContainer => CommandKind.Destroy,
        ContainerProtocol.GraceTimeUp => CommandKind.Reap,
        ContainerProtocol.OomKilled or ContainerProtocol.OomFlush => CommandKind.Oom,
        _ => null,
    };

    /// <summary>The error a refusing verdict gives, naming the container and why.</summary>
    public static GardenException Refusal(Verdict verdict, ContainerState state) => verdict switch
    {
        Verdict.UnknownHandle => GardenException.UnknownHandle(state.Handle),
        Verdict.AlreadyExists => new GardenException(ErrorKind.AlreadyExists, $"Handle '{state.Handle}' already in use"),
        Verdict.CannotRun => new GardenException(ErrorKind.FailedPrecondition,
            $"container {state.Handle} is {ContainerState.Describe(state.Lifecycle)}: it runs no new processes"),
        Verdict.BeingDestroyed => new GardenException(ErrorKind.FailedPrecondition, $"container {state.Handle} is being destroyed"),
        Verdict.Broken => new GardenException(ErrorKind.FailedPrecondition,
            $"container {state.Handle} is broken ({state.Events.LastOrDefault()}); destroy it"),
        _ => throw new ArgumentOutOfRangeException(nameof(verdict), verdict, "not a refusal"),
    };
}
