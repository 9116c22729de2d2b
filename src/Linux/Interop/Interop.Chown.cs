using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>lchown(2): the owner of <paramref name="path"/> itself (a symlink is not followed).</summary>
    public static void Lchown(string path, uint uid, uint gid)
    {
        fixed (byte* p = Utf8z(path, "lchown"))
            ThrowIfError(LibC.lchown(p, uid, gid), "lchown", path);
    }
}
