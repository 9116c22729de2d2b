using Akka.Actor;
using Akka.Event;
using Garden.Actors.Kernel;

namespace Garden.Actors.Container;

/// <summary>A container's log on Akka's logging bus: its log source is <c>container &lt;handle&gt;</c>, so every line of the
/// container, of its processes and of the kernel work done for it carries the handle (<c>[container demo] create
/// finished in 95.1 ms</c>) without any message spelling it out.</summary>
public sealed class ContainerLog(ILoggingAdapter log) : IContainerLog
{
    public static ContainerLog For(ActorSystem system, string handle) =>
        new(new BusLogging(system.EventStream, Source(handle), typeof(ContainerActor), system.Settings.LogFormatter));

    /// <summary>The log source of a container (a handle that is not a valid name is quoted: it may hold anything).</summary>
    public static string Source(string handle) => $"container {(Names.Problem(handle) is null ? handle : Names.Quote(handle))}";

    public ILoggingAdapter Adapter => log;

    public void Debug(string format, params object?[] args) => log.Debug(format, args);

    public void Info(string format, params object?[] args) => log.Info(format, args);

    public void Warning(string format, params object?[] args) => log.Warning(format, args);

    public void Error(Exception? cause, string format, params object?[] args)
    {
        if (cause is null) log.Error(format, args);
        else log.Error(cause, format, args);
    }

    public void Write(Note note)
    {
        switch (note.Level)
        {
            case NoteLevel.Info: log.Info("{0}", note.Text); break;
            case NoteLevel.Warning: log.Warning("{0}", note.Text); break;
            default: log.Error("{0}", note.Text); break;
        }
    }
}
