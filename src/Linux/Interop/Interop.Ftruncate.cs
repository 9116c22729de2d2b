using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    /// <summary>Sets a file's length; growing leaves a hole (no blocks allocated).</summary>
    public static void Ftruncate(SafeFd file, long length, string path)
    {
        using var fd = new FdRef(file);
        ThrowIfError(LibC.ftruncate(fd.Fd, length), "ftruncate", path);
    }
}
