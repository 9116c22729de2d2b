using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    private const uint MOVE_MOUNT_F_EMPTY_PATH = 0x4;

    [LibraryImport("libc", EntryPoint = "move_mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MoveMountRaw(int fromDirfd, string fromPath, int toDirfd, string toPath, uint flags);

    /// <summary>move_mount(2): attaches a detached tree (from open_tree) at <paramref name="target"/>.</summary>
    public static void MoveMount(SafeMountTreeHandle tree, string target)
    {
        var added = false;
        tree.DangerousAddRef(ref added);
        try
        {
            if (MoveMountRaw((int)tree.DangerousGetHandle(), "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                throw LastError("move_mount", target);
        }
        finally
        {
            if (added) tree.DangerousRelease();
        }
    }
}
