using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    private static partial int FtruncateRaw(int fd, long length);

    /// <summary>Sets a file's length; growing leaves a hole (no blocks allocated).</summary>
    public static void Ftruncate(SafeFdHandle fd, long length, string path)
    {
        var added = false;
        fd.DangerousAddRef(ref added);
        try
        {
            ThrowIfError(FtruncateRaw((int)fd.DangerousGetHandle(), length), "ftruncate", path);
        }
        finally
        {
            if (added) fd.DangerousRelease();
        }
    }
}
