using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true)]
    private static partial int LinkRaw(byte* existing, byte* created); // Tmds.LibC has no link

    /// <summary>link(2): <paramref name="created"/> becomes another name of <paramref name="existing"/> (a symlink is not
    /// followed: Linux's link does not dereference).</summary>
    public static void Link(string existing, string created)
    {
        fixed (byte* e = Utf8z(existing, "link"))
        fixed (byte* c = Utf8z(created, "link"))
            ThrowIfError(LinkRaw(e, c), "link", $"{existing} -> {created}");
    }
}
