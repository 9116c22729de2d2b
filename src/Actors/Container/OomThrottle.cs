namespace Garden.Actors.Container;

/// <summary>A container looping on allocations is killed hundreds of times a second: at most one report (one journal
/// record, one event) per interval, counting the kills in between. No clock of its own: the caller says when.</summary>
public sealed class OomThrottle(TimeSpan interval)
{
    private ulong _unreported;
    private long _lastUnixMs;
    private DateTime _reportedAt = DateTime.MinValue;
    private bool _due;

    /// <summary>The kills a report covers, and when the last of them was.</summary>
    public readonly record struct Report(ulong Kills, long AtUnixMs);

    /// <summary>One kill at <paramref name="now"/>: a report to make now; or none, and how long until the interval ends
    /// (<see cref="Due"/> must be called then); or neither, when a report is already due.</summary>
    public (Report? Now, TimeSpan? Wait) Killed(DateTime now, long nowUnixMs)
    {
        _unreported++;
        _lastUnixMs = nowUnixMs;
        if (_due) return (null, null);
        var since = now - _reportedAt;
        if (since >= interval) return (Take(now), null);
        _due = true;
        return (null, interval - since);
    }

    /// <summary>The interval ended: the report of the kills counted since the last one, or null when there were none.</summary>
    public Report? Due(DateTime now)
    {
        _due = false;
        return _unreported > 0 ? Take(now) : null;
    }

    private Report Take(DateTime now)
    {
        var report = new Report(_unreported, _lastUnixMs);
        _unreported = 0;
        _reportedAt = now;
        return report;
    }
}
