using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true)]
    private static partial byte* RealpathRaw(byte* path, byte* resolved); // Tmds.LibC has no realpath

    /// <summary>The canonical absolute path (symlinks resolved), as the kernel prints it in mountinfo and sysfs.</summary>
    public static string Realpath(string path)
    {
        byte* resolved;
        fixed (byte* p = Utf8z(path, "realpath"))
            resolved = RealpathRaw(p, null);
        if (resolved is null) throw LastError("realpath", path);
        try { return Marshal.PtrToStringUTF8((nint)resolved)!; }
        finally { NativeMemory.Free(resolved); } // malloc()ed by realpath
    }
}
