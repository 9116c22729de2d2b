using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

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
    private const uint AT_EMPTY_PATH = 0x1000;

    [LibraryImport("libc", EntryPoint = "mount_setattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MountSetattrRaw(int dirfd, string path, uint flags, MountAttrStruct* attr, nuint size);

    /// <summary>mount_setattr(2) on a detached tree: sets <paramref name="set"/>; with <see cref="MountAttr.Idmap"/> the
    /// tree shows every file's owner through the mapping of the user namespace <paramref name="userns"/> (an idmapped mount).</summary>
    public static void MountSetattr(SafeMountTreeHandle tree, MountAttr set, SafeHandle? userns, string what)
    {
        bool treeRef = false, nsRef = false;
        tree.DangerousAddRef(ref treeRef);
        try
        {
            var attr = new MountAttrStruct { AttrSet = set };
            if (userns is not null)
            {
                userns.DangerousAddRef(ref nsRef);
                attr.UsernsFd = (ulong)userns.DangerousGetHandle();
            }
            if (MountSetattrRaw((int)tree.DangerousGetHandle(), "", AT_EMPTY_PATH, &attr, (nuint)sizeof(MountAttrStruct)) < 0)
                throw LastError("mount_setattr", what);
        }
        finally
        {
            if (nsRef) userns!.DangerousRelease();
            if (treeRef) tree.DangerousRelease();
        }
    }
}
