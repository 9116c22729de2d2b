using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LchownRaw(string path, uint uid, uint gid);

    /// <summary>lchown(2): the owner of <paramref name="path"/> itself (a symlink is not followed).</summary>
    public static void Lchown(string path, uint uid, uint gid) => ThrowIfError(LchownRaw(path, uid, gid), "lchown", path);
}
