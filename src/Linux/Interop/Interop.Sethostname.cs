using System.Runtime.InteropServices;
using System.Text;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "sethostname", SetLastError = true)]
    private static partial int SethostnameRaw(byte* name, nuint len); // not in Tmds.LibC

    /// <summary>sethostname(2): the hostname of the calling thread's UTS namespace.</summary>
    public static void Sethostname(string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name);
        fixed (byte* n = bytes)
            ThrowIfError(SethostnameRaw(n, (nuint)bytes.Length), "sethostname", name);
    }
}
