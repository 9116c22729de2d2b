using System.Text;
using Garden.Protocol.Agent;

namespace Garden.Linux.Agent;

/// <summary>
/// Takes a container's agent log over the agent's socket (FollowLog) and appends it to a host file that only root reads
/// (created 0600). The agent keeps no descriptor of any host file: its lines wait in its memory until a daemon follows
/// (see the agent's AgentLog), so lines logged while gardend was away arrive when the next one follows. One follower per
/// container, an async read on one connection: cheap. It reconnects with a growing pause (up to 30 s) when the connection
/// breaks (the agent restarted with its container, or is frozen), and stops for good when the agent predates FollowLog
/// (such an agent writes its own log file) or when disposed.
/// </summary>
public sealed class AgentLogFollower : IAsyncDisposable
{
    private static readonly TimeSpan MaxPause = TimeSpan.FromSeconds(30);
    private static readonly UTF8Encoding Utf8 = new(false);

    private readonly AgentClient _agent;
    private readonly string _file;
    private readonly Action<string>? _problem;
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;

    private AgentLogFollower(AgentClient agent, string file, Action<string>? problem)
    {
        _agent = agent;
        _file = file;
        _problem = problem;
    }

    internal static AgentLogFollower Start(AgentClient agent, string file, Action<string>? problem)
    {
        var f = new AgentLogFollower(agent, file, problem);
        f._loop = Task.Run(f.RunAsync);
        return f;
    }

    private async Task RunAsync()
    {
        var pause = TimeSpan.FromMilliseconds(500);
        var ct = _stop.Token;
        string? lastProblem = null;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var (frames, first) = await _agent.OpenLogAsync(ct).ConfigureAwait(false);
                using (frames)
                {
                    lastProblem = null;
                    pause = TimeSpan.FromMilliseconds(500);
                    Append(first);
                    while (await frames.ReadFrameAsync(ct).ConfigureAwait(false) is { } frame)
                    {
                        var ev = AgentEvent.Parser.ParseFrom(frame.Span);
                        if (ev.KindCase == AgentEvent.KindOneofCase.Log) Append(ev.Log);
                    }
                }
                // the agent closed it: a newer follower took over, or the agent is going
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (AgentException e) when (e.Code == ErrorCode.Invalid)
            {
                _problem?.Invoke($"the agent does not serve its log ({e.Message}): it predates FollowLog and writes {_file} itself");
                return;
            }
            catch (Exception e)
            {
                // unavailable, frozen, or a broken frame: try again later
                var text = e is AgentUnavailableException u ? u.Reason : e.Message;
                if (text != lastProblem) _problem?.Invoke($"cannot follow the agent's log, retrying: {text}");
                lastProblem = text;
            }
            try
            {
                await Task.Delay(pause, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            pause = pause * 2 > MaxPause ? MaxPause : pause * 2;
        }
    }

    private void Append(LogLines batch)
    {
        if (batch.Lines.Count == 0 && batch.Dropped == 0) return;
        var text = new StringBuilder();
        if (batch.Dropped > 0)
            text.Append($"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} WARN gardend: {batch.Dropped} agent log lines were lost while no daemon followed\n");
        foreach (var line in batch.Lines)
        {
            // A line is one line in the file: whatever newline a message holds (a stack trace, a name read from the
            // container) continues indented, so nothing can start a line that looks like the agent's own.
            text.Append(line.Replace("\r", "\\r").Replace("\n", "\n    ")).Append('\n');
        }
        try
        {
            using var f = new FileStream(_file, new FileStreamOptions
            {
                Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite | FileShare.Delete,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            f.Write(Utf8.GetBytes(text.ToString()));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _problem?.Invoke($"cannot append to {_file}: {e.Message}");
        }
    }

    /// <summary>Stops following and waits until the follower is done with the file.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch
        {
            // it reported its problems already
        }
        _stop.Dispose();
    }
}
