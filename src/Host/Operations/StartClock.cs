using System.Diagnostics;

namespace Garden.Host.Operations;

/// <summary>Where gardend's start goes: each step's time since the process started (the runtime's own start counts), said
/// in one line once the gRPC socket serves ("gardend: started in N ms: runtime ..., settings ..."). The steps after it
/// (the journal's recovery, reconcile) are in the host actor's "serving" line.</summary>
public static class StartClock
{
    private static readonly DateTime ProcessStart = Process.GetCurrentProcess().StartTime.ToUniversalTime();
    private static readonly List<(string Step, double AtMs)> Marks = [];

    /// <summary>Milliseconds since the process started.</summary>
    public static double Now => (DateTime.UtcNow - ProcessStart).TotalMilliseconds;

    public static void Mark(string step)
    {
        lock (Marks) Marks.Add((step, Now));
    }

    /// <summary>"runtime 180, settings 40, ..." each step's own share (its mark minus the one before).</summary>
    public static string Describe()
    {
        lock (Marks)
        {
            var before = 0.0;
            var parts = new List<string>();
            foreach (var (step, at) in Marks)
            {
                parts.Add($"{step} {at - before:F0}");
                before = at;
            }
            return string.Join(", ", parts);
        }
    }
}
