using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>lo_flags of linux/loop.h (Tmds.LibC has no loop device header).</summary>
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
    // ioctl requests of linux/loop.h
    private const int LOOP_CLR_FD = 0x4C01;
    private const int LOOP_GET_STATUS64 = 0x4C05;
    private const int LOOP_SET_CAPACITY = 0x4C07;
    private const int LOOP_CONFIGURE = 0x4C0A;
    private const int LOOP_CTL_GET_FREE = 0x4C82;

    /// <summary>The number of a free loop device (the kernel creates it if needed); /dev/loop-control must be open.</summary>
    public static int LoopControlGetFree(SafeFd control)
    {
        using var fd = new FdRef(control);
        var n = LibC.ioctl(fd.Fd, LOOP_CTL_GET_FREE, 0);
        if (n < 0) throw LastError("ioctl(LOOP_CTL_GET_FREE)", "/dev/loop-control");
        return n;
    }

    /// <summary>Binds a backing file to a loop device and sets its flags in one step (LOOP_CONFIGURE, Linux 5.8+).
    /// Returns false when someone else bound the device first (EBUSY): take another free one.</summary>
    public static bool LoopConfigure(SafeFd loop, string loopPath, SafeFd backing, LoopFlags flags, uint blockSize)
    {
        using var lfd = new FdRef(loop);
        using var bfd = new FdRef(backing);
        var config = new LoopConfig { Fd = (uint)bfd.Fd, BlockSize = blockSize };
        config.Info.Flags = flags;
        if (LibC.ioctl(lfd.Fd, LOOP_CONFIGURE, &config) == 0) return true;
        var errno = Errno;
        if (errno == LibC.EBUSY) return false;
        throw new LinuxException("ioctl(LOOP_CONFIGURE)", loopPath, errno);
    }

    /// <summary>Makes the loop device pick up a new size of its backing file.</summary>
    public static void LoopSetCapacity(SafeFd loop, string loopPath)
    {
        using var fd = new FdRef(loop);
        ThrowIfError(LibC.ioctl(fd.Fd, LOOP_SET_CAPACITY, 0), "ioctl(LOOP_SET_CAPACITY)", loopPath);
    }

    /// <summary>Detaches the backing file; a device that is already free (ENXIO) counts as done. If the device is still
    /// open elsewhere the kernel turns on autoclear instead and detaches it at the last close.</summary>
    public static void LoopClearFd(SafeFd loop, string loopPath)
    {
        using var fd = new FdRef(loop);
        if (LibC.ioctl(fd.Fd, LOOP_CLR_FD, 0) == 0) return;
        var errno = Errno;
        if (errno == LibC.ENXIO) return;
        throw new LinuxException("ioctl(LOOP_CLR_FD)", loopPath, errno);
    }

    /// <summary>The status of a bound loop device, or null when it is free (ENXIO).</summary>
    public static LoopInfo64? LoopGetStatus(SafeFd loop, string loopPath)
    {
        using var fd = new FdRef(loop);
        LoopInfo64 info;
        if (LibC.ioctl(fd.Fd, LOOP_GET_STATUS64, &info) == 0) return info;
        var errno = Errno;
        if (errno == LibC.ENXIO) return null;
        throw new LinuxException("ioctl(LOOP_GET_STATUS64)", loopPath, errno);
    }
}
