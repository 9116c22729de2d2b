using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    private const uint MOVE_MOUNT_F_EMPTY_PATH = 0x4; // linux/mount.h; Tmds.LibC has no move_mount

    [LibraryImport("libc", EntryPoint = "move_mount", SetLastError = true)]
    private static partial int MoveMountRaw(int fromDirfd, byte* fromPath, int toDirfd, byte* toPath, uint flags);

    /// <summary>move_mount(2): attaches a detached tree (from open_tree) at <paramref name="target"/>.</summary>
    public static void MoveMount(SafeFd tree, string target)
    {
        using var fd = new FdRef(tree);
        byte empty = 0;
        fixed (byte* t = Utf8z(target, "move_mount"))
            if (MoveMountRaw(fd.Fd, &empty, LibC.AT_FDCWD, t, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                throw LastError("move_mount", target);
    }
}
