using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>posix_spawn(3) and its attribute and file-action helpers (Tmds.LibC has no spawn.h).</summary>
internal static unsafe partial class Sys
{
    private const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;

    // glibc x86_64: posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336: over-allocate.
    public const int SpawnStructSize = 512;

    /// <summary>Returns an errno (not -1), as posix_spawn does.</summary>
    [LibraryImport("libc", EntryPoint = "posix_spawn")]
    public static partial int PosixSpawn(int* pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_init")]
    public static partial int FileActionsInit(void* fa);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_destroy")]
    public static partial int FileActionsDestroy(void* fa);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_adddup2")]
    private static partial int FileActionsAddDup2Raw(void* fa, int fd, int newFd);

    [LibraryImport("libc", EntryPoint = "posix_spawn_file_actions_addopen", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FileActionsAddOpen(void* fa, int fd, string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_init")]
    public static partial int SpawnAttrInit(void* attr);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_destroy")]
    public static partial int SpawnAttrDestroy(void* attr);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setflags")]
    private static partial int SpawnAttrSetFlags(void* attr, short flags);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setsigmask")]
    private static partial int SpawnAttrSetSigMask(void* attr, sigset_t* sigset);

    [LibraryImport("libc", EntryPoint = "posix_spawnattr_setsigdefault")]
    private static partial int SpawnAttrSetSigDefault(void* attr, sigset_t* sigset);

    /// <summary>The child starts with no signal blocked and every signal at its default action, whatever the runtime
    /// set up in this process.</summary>
    public static void SpawnAttrResetSignals(void* attr)
    {
        sigset_t sigs;
        LibC.sigemptyset(&sigs);
        SpawnAttrSetSigMask(attr, &sigs);
        LibC.sigfillset(&sigs);
        SpawnAttrSetSigDefault(attr, &sigs);
        SpawnAttrSetFlags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }

    /// <summary>The child gets <paramref name="fd"/> as <paramref name="newFd"/>. The caller keeps <paramref name="fd"/>
    /// open until posix_spawn has run (the file action only records its number).</summary>
    public static int FileActionsAddDup2(void* fa, SafeFd fd, int newFd)
    {
        using var r = new FdRef(fd);
        return FileActionsAddDup2Raw(fa, r.Fd, newFd);
    }
}
