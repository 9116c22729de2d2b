using System.Runtime.InteropServices;

namespace Garden.Linux.Interop;

/// <summary>lo_flags of linux/loop.h.</summary>
[Flags]
internal enum LoopFlags : uint
{
    None = 0,
    ReadOnly = 1,
    /// <summary>Detach the device when its last opener closes it (the last unmount).</summary>
    AutoClear = 4,
    PartScan = 8,
    /// <summary>Read and write the backing file with O_DIRECT: no second copy in the page cache.</summary>
    DirectIo = 16,
}

/// <summary>struct loop_info64 of linux/loop.h (232 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LoopInfo64
{
    public ulong Device;
    public ulong Inode;
    public ulong Rdevice;
    public ulong Offset;
    public ulong SizeLimit;
    public uint Number;
    public uint EncryptType;
    public uint EncryptKeySize;
    public LoopFlags Flags;
    public fixed byte FileName[64];
    public fixed byte CryptName[64];
    public fixed byte EncryptKey[32];
    public fixed ulong Init[2];
}

/// <summary>struct loop_config of linux/loop.h (304 bytes), for LOOP_CONFIGURE.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LoopConfig
{
    public uint Fd;
    public uint BlockSize;
    public LoopInfo64 Info;
    public fixed ulong Reserved[8];
}

internal static unsafe partial class Sys
{
    public const int ENXIO = 6, ENOTTY = 25, ENOSPC = 28;

    private const nuint LOOP_CLR_FD = 0x4C01;
    private const nuint LOOP_GET_STATUS64 = 0x4C05;
    private const nuint LOOP_SET_CAPACITY = 0x4C07;
    private const nuint LOOP_CONFIGURE = 0x4C0A;
    private const nuint LOOP_CTL_GET_FREE = 0x4C82;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int LoopIoctlPtr(int fd, nuint request, void* arg);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int LoopIoctlLong(int fd, nuint request, nint arg);

    /// <summary>The number of a free loop device (the kernel creates it if needed); /dev/loop-control must be open.</summary>
    public static int LoopControlGetFree(SafeFdHandle control)
    {
        var added = false;
        control.DangerousAddRef(ref added);
        try
        {
            var n = LoopIoctlLong((int)control.DangerousGetHandle(), LOOP_CTL_GET_FREE, 0);
            if (n < 0) throw LastError("ioctl(LOOP_CTL_GET_FREE)", "/dev/loop-control");
            return n;
        }
        finally
        {
            if (added) control.DangerousRelease();
        }
    }

    /// <summary>Binds a backing file to a loop device and sets its flags in one step (LOOP_CONFIGURE, Linux 5.8+).
    /// Returns false when someone else bound the device first (EBUSY): take another free one.</summary>
    public static bool LoopConfigure(SafeFdHandle loop, string loopPath, SafeFdHandle backing, LoopFlags flags, uint blockSize)
    {
        bool addedLoop = false, addedBacking = false;
        loop.DangerousAddRef(ref addedLoop);
        backing.DangerousAddRef(ref addedBacking);
        try
        {
            var config = new LoopConfig { Fd = (uint)backing.DangerousGetHandle(), BlockSize = blockSize };
            config.Info.Flags = flags;
            if (LoopIoctlPtr((int)loop.DangerousGetHandle(), LOOP_CONFIGURE, &config) == 0) return true;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EBUSY) return false;
            throw new LinuxException("ioctl(LOOP_CONFIGURE)", loopPath, errno);
        }
        finally
        {
            if (addedBacking) backing.DangerousRelease();
            if (addedLoop) loop.DangerousRelease();
        }
    }

    /// <summary>Makes the loop device pick up a new size of its backing file.</summary>
    public static void LoopSetCapacity(SafeFdHandle loop, string loopPath)
    {
        var added = false;
        loop.DangerousAddRef(ref added);
        try
        {
            ThrowIfError(LoopIoctlLong((int)loop.DangerousGetHandle(), LOOP_SET_CAPACITY, 0), "ioctl(LOOP_SET_CAPACITY)", loopPath);
        }
        finally
        {
            if (added) loop.DangerousRelease();
        }
    }

    /// <summary>Detaches the backing file; a device that is already free (ENXIO) counts as done. If the device is still
    /// open elsewhere the kernel turns on autoclear instead and detaches it at the last close.</summary>
    public static void LoopClearFd(SafeFdHandle loop, string loopPath)
    {
        var added = false;
        loop.DangerousAddRef(ref added);
        try
        {
            if (LoopIoctlLong((int)loop.DangerousGetHandle(), LOOP_CLR_FD, 0) == 0) return;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ENXIO) return;
            throw new LinuxException("ioctl(LOOP_CLR_FD)", loopPath, errno);
        }
        finally
        {
            if (added) loop.DangerousRelease();
        }
    }

    /// <summary>The status of a bound loop device, or null when it is free (ENXIO).</summary>
    public static LoopInfo64? LoopGetStatus(SafeFdHandle loop, string loopPath)
    {
        var added = false;
        loop.DangerousAddRef(ref added);
        try
        {
            LoopInfo64 info;
            if (LoopIoctlPtr((int)loop.DangerousGetHandle(), LOOP_GET_STATUS64, &info) == 0) return info;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == ENXIO) return null;
            throw new LinuxException("ioctl(LOOP_GET_STATUS64)", loopPath, errno);
        }
        finally
        {
            if (added) loop.DangerousRelease();
        }
    }
}
