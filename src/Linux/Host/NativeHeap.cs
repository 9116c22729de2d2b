using Garden.Linux.Interop;

namespace Garden.Linux.Host;

/// <summary>The process's native heap (malloc): the runtime's own allocations, the JIT's scratch memory, SQLite's.</summary>
public interface INativeHeap
{
    /// <summary>Gives the heap's free pages back to the kernel; false when there were none, or the libc cannot.</summary>
    bool Trim();
}

/// <summary>glibc's malloc: what is freed stays in its arena (one per thread that allocated, up to 8 per core) until the
/// top of that arena is free; the pages of free chunks in the middle stay resident until malloc_trim. In gardend that was
/// ~13 MB of its RSS with 250 containers: the JIT's scratch memory of the methods compiled while they were made, freed
/// long before (bench/FINDINGS-memory.md).</summary>
public sealed class GlibcHeap : INativeHeap
{
    private bool _unsupported;

    public bool Trim()
    {
        if (_unsupported) return false;
        try
        {
            return Sys.MallocTrim();
        }
        catch (EntryPointNotFoundException)
        {
            _unsupported = true; // not glibc: nothing to do, ever
            return false;
        }
    }
}
