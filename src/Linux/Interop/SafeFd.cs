using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Garden.Linux.Interop;

/// <summary>An owned file descriptor (a file, device node, eventfd, inotify instance, pidfd, namespace, socket or detached
/// mount tree), closed exactly once. What the fd refers to is in the name of the variable, not the type.</summary>
internal sealed class SafeFd : SafeHandleMinusOneIsInvalid
{
    public SafeFd(int fd) : base(ownsHandle: true) => SetHandle(fd);

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}

/// <summary>The number of an fd, valid while this lives: the handle cannot be closed under a call that uses it
/// (<c>using var fd = new FdRef(handle); LibC.x(fd.Fd, ...)</c>).</summary>
internal readonly ref struct FdRef
{
    private readonly SafeHandle _handle;

    public FdRef(SafeHandle handle)
    {
        var added = false;
        handle.DangerousAddRef(ref added); // throws ObjectDisposedException once the handle is closed
        _handle = handle;
        Fd = (int)handle.DangerousGetHandle();
    }

    public int Fd { get; }

    public void Dispose() => _handle.DangerousRelease();
}
