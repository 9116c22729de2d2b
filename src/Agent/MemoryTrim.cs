using System.Runtime;

namespace Garden.Agent;

/// <summary>
/// Gives the memory of a burst of work back to the kernel once the agent is quiet again. The agent is idle most of its life,
/// and its memory is every container's overhead: with a small gen0 budget (the csproj), a stream's buffers that were still
/// in flight at a collection are promoted and die in the older generations, where nothing collects them until a full
/// collection (measured: 4 MB of output left a container's agent at 6.9-7.3 MiB of anonymous memory for good). So at the
/// end of every operation (<see cref="Poke"/>), once the agent allocated at least <see cref="TrimAfterBytes"/> since the
/// last trim, a worker waits until the agent allocated less than <see cref="QuietBytes"/> in <see cref="QuietFor"/> (gardend
/// asks an agent for its List every second while a detached process runs), then makes one full, compacting collection,
/// which also decommits the GC's free space (0-1 ms at the agent's size). Nothing runs while the agent is idle, and
/// nothing on an operation's path.
/// </summary>
internal static class MemoryTrim
{
    public const long TrimAfterBytes = 512 * 1024;
    public static readonly TimeSpan QuietFor = TimeSpan.FromSeconds(1);
    public const long QuietBytes = 64 * 1024;

    private static long s_allocatedAtTrim;
    private static int s_armed;
    private static long s_lastTrimAllocated;

    /// <summary>An operation ended: trim once the agent is quiet, if it allocated enough since the last trim.</summary>
    public static void Poke()
    {
        if (GC.GetTotalAllocatedBytes() - Volatile.Read(ref s_allocatedAtTrim) < TrimAfterBytes) return;
        if (Interlocked.Exchange(ref s_armed, 1) == 0) Workers.Run(WaitAndTrim);
    }

    private static void WaitAndTrim()
    {
        // quiet: less than QuietBytes allocated during QuietFor (gardend's periodic requests are a few KiB each)
        long before = GC.GetTotalAllocatedBytes();
        while (true)
        {
            Thread.Sleep(QuietFor);
            long now = GC.GetTotalAllocatedBytes();
            if (now - before < QuietBytes) break;
            before = now;
        }
        long start = Environment.TickCount64, allocated = GC.GetTotalAllocatedBytes();
        ManagedProcess.ReadBuffers.Clear();
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        Volatile.Write(ref s_allocatedAtTrim, GC.GetTotalAllocatedBytes());
        var info = GC.GetGCMemoryInfo();
        AgentLog.Info($"memory trimmed in {Environment.TickCount64 - start} ms after {(allocated - s_lastTrimAllocated) / 1024} KiB " +
            $"allocated: GC heap {info.HeapSizeBytes / 1024} KiB, committed {info.TotalCommittedBytes / 1024} KiB");
        s_lastTrimAllocated = allocated;
        Volatile.Write(ref s_armed, 0);
    }
}
