namespace Garden.Cli.Args;

/// <summary>Bad command-line usage: a missing argument, an unknown flag or command, a malformed value.
/// <see cref="Command"/> is the command being parsed when known (run/attach use a different exit code).</summary>
public sealed class UsageException(string message, string? command = null) : Exception(message)
{
    public string? Command { get; } = command;
}
