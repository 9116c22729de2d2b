using Garden.Actors.Container;
using Garden.Actors.Host;

namespace Garden.Actors;

/// <summary>The check of every request about one container that needs nothing but the request itself: the HostActor runs
/// it before it routes the request (a Create is checked by <see cref="HostState.Admit"/>). What depends on the container's
/// state — is it stopped, has it a network, a disk limit — the container decides.</summary>
public static class Requests
{
    /// <summary>What is wrong with the request, naming the field and the value; null when it may go to its container.</summary>
    public static GardenException? Problem(IContainerCommand command) => command switch
    {
        ContainerProtocol.RunProcess r => r.Spec.Problem(),
        ContainerProtocol.AttachProcess a => ProcessIdProblem(a.ProcessId),
        ContainerProtocol.SignalProcess s => ProcessIdProblem(s.ProcessId) ?? Signals.Problem(s.Signal),
        ContainerProtocol.SetProcessTty t => ProcessIdProblem(t.ProcessId) ?? t.Size.Problem(),
        ContainerProtocol.SetProperty p => p.Key.Length == 0 ? GardenException.Invalid("key", "must not be empty") : null,
        ContainerProtocol.SetLimits l => l.Change.Problem(),
        ContainerProtocol.SetGraceTime g => GraceTime.Problem(g.GraceTime),
        ContainerProtocol.NetIn n => NetworkRequests.HostPortProblem(n.HostPort) ?? NetworkRequests.ContainerPortProblem(n.ContainerPort),
        ContainerProtocol.NetOut o => o.Rules.IsDefaultOrEmpty ? GardenException.Invalid("rules", "no rule given") : NetworkRequests.RulesProblem(o.Rules),
        _ => null,
    };

    /// <summary>A process id that is not a valid name is refused at every entry (Run, Attach, Signal, SetTty): no process
    /// of this daemon has one.</summary>
    private static GardenException? ProcessIdProblem(string id) =>
        Names.Problem(id) is { } problem ? GardenException.Invalid("process id", $"{Names.Quote(id)} {problem}") : null;
}
