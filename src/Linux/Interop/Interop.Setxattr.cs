using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "lsetxattr", SetLastError = true)]
    private static partial int LsetxattrRaw(byte* path, byte* name, byte* value, nuint size, int flags); // not in Tmds.LibC

    /// <summary>lsetxattr(2): sets the extended attribute <paramref name="name"/> of <paramref name="path"/> itself.</summary>
    public static void Lsetxattr(string path, string name, ReadOnlySpan<byte> value)
    {
        fixed (byte* p = Utf8z(path, "lsetxattr"))
        fixed (byte* n = Utf8z(name, "lsetxattr"))
        fixed (byte* v = value)
            ThrowIfError(LsetxattrRaw(p, n, v, (nuint)value.Length, 0), $"lsetxattr {name}", path);
    }
}
