namespace Garden.Actors;

/// <summary>Test-only crash points: when garden.fault.crash-at names a point, the daemon kills itself with SIGKILL
/// there — exactly what an operator's kill -9 at that moment would do. Empty (the default) switches them all off.</summary>
public sealed class FaultPoints(string crashAt)
{
    public static readonly FaultPoints None = new("");

    public void Hit(string point)
    {
        if (crashAt.Length == 0 || crashAt != point) return;
        Console.Error.WriteLine($"gardend: fault point {point}: killing myself (garden.fault.crash-at)");
        System.Diagnostics.Process.GetCurrentProcess().Kill();
        Thread.Sleep(Timeout.Infinite);
    }
}
