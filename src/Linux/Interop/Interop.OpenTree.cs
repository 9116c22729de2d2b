using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    private const uint OPEN_TREE_CLONE = 1; // linux/mount.h; Tmds.LibC has no open_tree

    [LibraryImport("libc", EntryPoint = "open_tree", SetLastError = true)]
    private static partial int OpenTreeRaw(int dirfd, byte* path, uint flags);

    /// <summary>open_tree(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC): a detached, private copy of the mount at
    /// <paramref name="path"/>, attached nowhere yet; closing the fd unmounts the copy unless move_mount attached it.</summary>
    public static SafeFd OpenTreeClone(string path)
    {
        fixed (byte* p = Utf8z(path, "open_tree"))
        {
            var fd = OpenTreeRaw(LibC.AT_FDCWD, p, OPEN_TREE_CLONE | (uint)LibC.O_CLOEXEC); // OPEN_TREE_CLOEXEC is O_CLOEXEC
            if (fd < 0) throw LastError("open_tree", path);
            return new SafeFd(fd);
        }
    }
}
