namespace Garden.Actors;

/// <summary>Grace time: how long a container may stay idle before it is destroyed. Zero = never.</summary>
public static class GraceTime
{
    /// <summary>The longest a timer can wait (int.MaxValue ms, about 24.8 days).</summary>
    public static readonly TimeSpan Max = TimeSpan.FromMilliseconds(int.MaxValue);

    public static GardenException? Problem(TimeSpan t) =>
        t < TimeSpan.Zero || t > Max
            ? GardenException.Invalid("grace time", $"{t.TotalMilliseconds:0} ms is out of range (0 = never, at most {Max.TotalMilliseconds:0} ms, about 24 days)")
            : null;

    public static string Describe(TimeSpan t) => t == TimeSpan.Zero ? "never" : t.ToString();
}
