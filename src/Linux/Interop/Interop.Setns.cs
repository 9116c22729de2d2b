using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    /// <summary>setns(2) with a <c>LibC.CLONE_NEW*</c> type: moves the calling thread (only it) into the namespace the fd
    /// refers to.</summary>
    public static void Setns(SafeFd ns, int nstype, string path)
    {
        using var fd = new FdRef(ns);
        ThrowIfError(LibC.setns(fd.Fd, nstype), "setns", path);
    }
}
