using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

/// <summary>The namespace types setns(2) takes (the CLONE_NEW* flags).</summary>
internal enum NamespaceType
{
    Network = 0x40000000,
}

internal static partial class Sys
{
    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetnsRaw(SafeFdHandle fd, NamespaceType type);

    /// <summary>setns(2): moves the calling thread (only it) into the namespace the fd refers to.</summary>
    public static void Setns(SafeFdHandle fd, NamespaceType type, string path) => ThrowIfError(SetnsRaw(fd, type), "setns", path);
}
