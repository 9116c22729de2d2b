using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrimRaw(nuint pad);

    /// <summary>malloc_trim(3) with no padding: glibc gives the free pages of every malloc arena back to the kernel
    /// (MADV_DONTNEED on whole free pages, not only the top of the heap); true if any memory was released. A libc
    /// without it (musl) throws <see cref="EntryPointNotFoundException"/>.</summary>
    public static bool MallocTrim() => MallocTrimRaw(0) != 0;
}
