using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>pipe2(O_CLOEXEC): a read end and a write end.</summary>
    public static (SafeFd Read, SafeFd Write) Pipe()
    {
        var fds = stackalloc int[2];
        ThrowIfError(LibC.pipe2(fds, LibC.O_CLOEXEC), "pipe2");
        return (new SafeFd(fds[0]), new SafeFd(fds[1]));
    }
}
