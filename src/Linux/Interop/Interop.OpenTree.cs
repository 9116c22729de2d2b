using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Garden.Linux.Interop;

/// <summary>A detached mount tree from open_tree(OPEN_TREE_CLONE): a private copy of a mount, not yet attached
/// anywhere; closing it unmounts the copy unless move_mount attached it.</summary>
internal sealed class SafeMountTreeHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafeMountTreeHandle(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => Sys.Close((int)handle) == 0;
}

[Flags]
internal enum OpenTreeFlags : uint
{
    None = 0,
    Clone = 1,               // OPEN_TREE_CLONE
    Recursive = 0x8000,      // AT_RECURSIVE
    CloseOnExec = 0x80000,   // OPEN_TREE_CLOEXEC
}

internal static partial class Sys
{
    private const int AT_FDCWD = -100;

    [LibraryImport("libc", EntryPoint = "open_tree", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenTreeRaw(int dirfd, string path, OpenTreeFlags flags);

    /// <summary>open_tree(2): a detached clone of the mount at <paramref name="path"/> (close-on-exec).</summary>
    public static SafeMountTreeHandle OpenTreeClone(string path)
    {
        var fd = OpenTreeRaw(AT_FDCWD, path, OpenTreeFlags.Clone | OpenTreeFlags.CloseOnExec);
        if (fd < 0) throw LastError("open_tree", path);
        return new SafeMountTreeHandle(fd);
    }
}
