using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Garden.Host.Operations;

/// <summary>gardend's log as JSON lines (<c>garden.log.format = json</c>, <c>--log-format json</c>): one object per line,
/// <c>{"timestamp", "level", "message", "category", "source"?, "handle"?, "operation"?, "exception"?}</c>, for journald,
/// Loki, jq. The handle comes from a container's log source (<c>container &lt;handle&gt;</c>, <see cref="Actors.Container.ContainerLog"/>),
/// the operation from the step a line tells ("create starting", "network finished in 15 ms", "destroy failed after ...").
/// gardend's plain lines (the serving line, the endpoints it opened) are written through <see cref="Console.Out"/> and
/// <see cref="Console.Error"/>, which <see cref="Install"/> replaces with writers that turn each line into such an object
/// (level info and error), so stdout and stderr hold nothing but JSON lines.</summary>
public sealed partial class JsonLog
{
    private readonly Stream _out;
    private readonly Stream _err;
    private readonly object _lock = new();

    public JsonLog(Stream stdout, Stream stderr)
    {
        _out = stdout;
        _err = stderr;
    }

    /// <summary>Console.Out and Console.Error become JSON line writers on the process's stdout and stderr.</summary>
    public static JsonLog Install()
    {
        var log = new JsonLog(Console.OpenStandardOutput(), Console.OpenStandardError());
        Console.SetOut(log.Lines("info", toStderr: false));
        Console.SetError(log.Lines("error", toStderr: true));
        return log;
    }

    /// <summary>A writer whose every line becomes one object of category gardend (a leading "gardend: " dropped).</summary>
    public TextWriter Lines(string level, bool toStderr) => TextWriter.Synchronized(new LineWriter(this, level, toStderr));

    public void Write(string level, string category, string message, string? source = null, Exception? exception = null,
        bool toStderr = false, DateTimeOffset? at = null)
    {
        var handle = source is not null && source.StartsWith("container ", StringComparison.Ordinal) ? source["container ".Length..] : null;
        var step = Step().Match(message);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("timestamp", (at ?? DateTimeOffset.UtcNow).ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'"));
            json.WriteString("level", level);
            json.WriteString("message", message);
            json.WriteString("category", category);
            if (source is not null) json.WriteString("source", source);
            if (handle is not null) json.WriteString("handle", handle);
            if (step.Success) json.WriteString("operation", step.Groups["op"].Value);
            if (exception is not null) json.WriteString("exception", exception.ToString());
            json.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        lock (_lock)
        {
            var to = toStderr ? _err : _out;
            buffer.Position = 0;
            buffer.CopyTo(to);
            to.Flush();
        }
    }

    /// <summary>A step of the log's "X starting" / "X finished in N ms" / "X failed after N ms: why" pairs: X is its first
    /// words up to what is not a plain word ("rootfs (idmapped base) finished" is rootfs, "user namespace 0 ... finished"
    /// user namespace).</summary>
    [GeneratedRegex(@"\A(?<op>[a-z]+(?: [a-z]+)*)\b[^\n]*? (?:starting|finished in [0-9.]+ ms|failed after [0-9.]+ ms)")]
    private static partial Regex Step();

    /// <summary>Console.Out/Console.Error in JSON mode: each line written becomes one object of category gardend.</summary>
    private sealed class LineWriter(JsonLog log, string level, bool toStderr) : TextWriter
    {
        private readonly StringBuilder _line = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            if (value == '\n')
            {
                var text = _line.ToString().TrimEnd('\r');
                _line.Clear();
                var message = text.StartsWith("gardend: ", StringComparison.Ordinal) ? text["gardend: ".Length..] : text;
                log.Write(level, "gardend", message, toStderr: toStderr);
            }
            else _line.Append(value);
        }

        public override void Write(string? value)
        {
            foreach (var c in value ?? "") Write(c);
        }
    }
}

/// <summary>Microsoft.Extensions.Logging into <see cref="JsonLog"/>: Akka's events (through <see cref="AkkaLogger"/>, whose
/// state carries the log source) and ASP.NET Core's.</summary>
public sealed class JsonLoggerProvider(JsonLog log) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Logger(log, categoryName);

    public void Dispose() { }

    private sealed class Logger(JsonLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            string? source = null;
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
                foreach (var (k, v) in pairs)
                    if (k == "LogSource") source = v?.ToString();
            var message = formatter(state, exception);
            // AkkaLogger's text starts with "[source]": the source is a field of its own here
            if (source is not null && message.StartsWith($"[{source}] ", StringComparison.Ordinal)) message = message[(source.Length + 3)..];
            log.Write(Level(logLevel), category, message, source, exception);
        }

        private static string Level(LogLevel level) => level switch
        {
            LogLevel.Trace => "trace",
            LogLevel.Debug => "debug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warning",
            LogLevel.Error => "error",
            _ => "critical",
        };
    }
}
