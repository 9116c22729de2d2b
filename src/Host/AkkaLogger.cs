using System.Text.RegularExpressions;
using Akka.Actor;
using Akka.Event;
using Akka.Hosting.Logging;

namespace Garden.Host;

/// <summary>Akka's log events, of both actor systems, into Microsoft.Extensions.Logging (category <see cref="Category"/>),
/// so gardend has one log with one format (<see cref="Wiring.WireLogging"/>). Akka.Hosting's LoggerFactoryLogger with
/// a shorter text: "[source][context] message", without the level, timestamp and thread that Akka's own text repeats
/// and without the cause, which goes to the logger as the exception. The state carries the source, the actor path and
/// the message's and logging context's properties. Which events are sent at all is <c>akka.loglevel</c>'s choice.</summary>
public sealed partial class AkkaLogger : LoggerFactoryLogger
{
    public const string Category = "Akka";

    private readonly ILogger _log = Context.System.Settings.Setup.Get<LoggerFactorySetup>().Value.LoggerFactory.CreateLogger(Category);

    protected override void Log(LogEvent log, ActorPath path)
    {
        var level = log.LogLevel() switch
        {
            Akka.Event.LogLevel.DebugLevel => Microsoft.Extensions.Logging.LogLevel.Debug,
            Akka.Event.LogLevel.InfoLevel => Microsoft.Extensions.Logging.LogLevel.Information,
            Akka.Event.LogLevel.WarningLevel => Microsoft.Extensions.Logging.LogLevel.Warning,
            _ => Microsoft.Extensions.Logging.LogLevel.Error,
        };
        if (!_log.IsEnabled(level)) return;
        var text = Text(log);
        List<KeyValuePair<string, object?>> state = [new("LogSource", log.LogSource), new("ActorPath", path.ToString())];
        if (log.TryGetProperties(out var properties) && properties is not null)
            state.AddRange(properties.Select(p => new KeyValuePair<string, object?>(p.Key, p.Value)));
        _log.Log(level, default, state, log.Cause, (_, _) => text);
    }

    /// <summary>Akka's own text (which renders the message and the logging context) less its prefix and its cause.</summary>
    private static string Text(LogEvent log)
    {
        string text;
        try
        {
            text = log.ToString();
        }
        catch (Exception e) // a message whose format and arguments disagree
        {
            return $"[{log.LogSource}] {log.Message} (cannot be formatted: {e.Message})";
        }
        if (log.Cause is { } cause)
        {
            var suffix = $"{Environment.NewLine}Cause: {cause}";
            if (text.EndsWith(suffix, StringComparison.Ordinal)) text = text[..^suffix.Length];
        }
        return Prefix().Replace(text, "", 1);
    }

    /// <summary>"[INFO][11/29/2026 22:12:40.066Z][Thread 0007]" of <see cref="LogEvent.ToString"/>.</summary>
    [GeneratedRegex(@"\A\[[A-Z]+\]\[[^\]]*\]\[Thread \d+\]")]
    private static partial Regex Prefix();
}
