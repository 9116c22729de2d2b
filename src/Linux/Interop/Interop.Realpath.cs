using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealpathRaw(string path, nint resolved);

    /// <summary>The canonical absolute path (symlinks resolved), as the kernel prints it in mountinfo and sysfs.</summary>
    public static string Realpath(string path)
    {
        var p = RealpathRaw(path, 0);
        if (p == 0) throw LastError("realpath", path);
        try { return Marshal.PtrToStringUTF8(p)!; }
        finally { unsafe { NativeMemory.Free((void*)p); } } // malloc()ed by realpath
    }
}
