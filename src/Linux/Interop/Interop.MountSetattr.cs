using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>MOUNT_ATTR_* of linux/mount.h (Tmds.LibC has no mount_setattr).</summary>
[Flags]
internal enum MountAttr : ulong
{
    None = 0,
    ReadOnly = 0x1,          // MOUNT_ATTR_RDONLY
    NoSuid = 0x2,            // MOUNT_ATTR_NOSUID
    NoDev = 0x4,             // MOUNT_ATTR_NODEV
    NoExec = 0x8,            // MOUNT_ATTR_NOEXEC
    Idmap = 0x100000,        // MOUNT_ATTR_IDMAP
}

/// <summary>struct mount_attr (linux/mount.h, MOUNT_ATTR_SIZE_VER0 = 32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MountAttrStruct
{
    public MountAttr AttrSet;
    public MountAttr AttrClear;
    public ulong Propagation;
    public ulong UsernsFd;
}

internal static unsafe partial class Sys
{
    [LibraryImport("libc", EntryPoint = "mount_setattr", SetLastError = true)]
    private static partial int MountSetattrRaw(int dirfd, byte* path, uint flags, MountAttrStruct* attr, nuint size);

    /// <summary>mount_setattr(2) on a detached tree: sets <paramref name="set"/>; with <see cref="MountAttr.Idmap"/> the
    /// tree shows every file's owner through the mapping of the user namespace <paramref name="userns"/> (an idmapped mount).</summary>
    public static void MountSetattr(SafeFd tree, MountAttr set, SafeFd? userns, string what)
    {
        using var treeFd = new FdRef(tree);
        var attr = new MountAttrStruct { AttrSet = set };
        if (userns is null)
        {
            SetattrEmptyPath(treeFd.Fd, &attr, what);
            return;
        }
        using var nsFd = new FdRef(userns);
        attr.UsernsFd = (ulong)nsFd.Fd;
        SetattrEmptyPath(treeFd.Fd, &attr, what);
    }

    private static void SetattrEmptyPath(int tree, MountAttrStruct* attr, string what)
    {
        byte empty = 0;
        if (MountSetattrRaw(tree, &empty, (uint)LibC.AT_EMPTY_PATH, attr, (nuint)sizeof(MountAttrStruct)) < 0)
            throw LastError("mount_setattr", what);
    }
}
