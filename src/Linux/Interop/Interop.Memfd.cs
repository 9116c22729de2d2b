using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;

namespace Garden.Linux.Interop;

internal static unsafe partial class Sys
{
    /// <summary>An anonymous, close-on-exec memory file (memfd_create(2)) holding <paramref name="content"/>, offset back
    /// at 0: a batch handed to a command as /proc/self/fd/N leaves no file behind, even when we are killed mid-command,
    /// and no other user can read it.</summary>
    public static SafeFd MemfdWithContent(string name, string content)
    {
        var fd = CreateMemfd(name, LibC.MFD_CLOEXEC);
        var raw = (int)fd.DangerousGetHandle();
        try
        {
            WriteAll(raw, Encoding.UTF8.GetBytes(content), name);
            if (LibC.lseek(raw, 0, LibC.SEEK_SET) < 0) throw LastError("lseek", name);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
    /// <summary>A read-only memory file holding <paramref name="content"/>: sealed against every write, growth and shrink
    /// (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), so whoever it is handed to can only read it, with
    /// pread(2) (a shared descriptor's offset is shared too). Close-on-exec: it goes only where it is passed on purpose.</summary>
    public static SafeFd MemfdSealed(string name, ReadOnlySpan<byte> content)
    {
        var fd = CreateMemfd(name, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
        var raw = (int)fd.DangerousGetHandle();
        try
        {
            WriteAll(raw, content, name);
            SealAll(raw, name);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>A sealed memory file (as <see cref="MemfdSealed"/>) holding a copy of the file open as <paramref name="source"/>,
    /// copied by the kernel (sendfile(2)), <paramref name="size"/> bytes from its start, made to be exec'd (MFD_EXEC where
    /// the kernel knows it: with vm.memfd_noexec = 1 a memfd is not executable otherwise).</summary>
    public static SafeFd MemfdSealedCopy(string name, SafeHandle source, long size)
    {
        var fd = CreateExecutableMemfd(name);
        var raw = (int)fd.DangerousGetHandle();
        try
        {
            using var src = new FdRef(source);
            long offset = 0;
            while (offset < size)
            {
                var n = SendfileRaw(raw, src.Fd, &offset, (nint)(size - offset));
                if (n < 0 && Errno == LibC.EINTR) continue;
                if (n < 0) throw LastError("sendfile", name);
                if (n == 0) throw new IOException($"{name}: the file ended at {offset} of {size} bytes while it was copied");
            }
            SealAll(raw, name);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Seals a filled memory file for good: no write, no growing or shrinking, no further seal.</summary>
    private static void SealAll(int raw, string name)
    {
        if (LibC.fcntl(raw, LibC.F_ADD_SEALS, LibC.F_SEAL_WRITE | LibC.F_SEAL_GROW | LibC.F_SEAL_SHRINK | LibC.F_SEAL_SEAL) < 0)
            throw LastError("fcntl(F_ADD_SEALS)", name);
    }

    /// <summary>The seals of a memory file (F_GET_SEALS), or -1 when it is not one that takes seals.</summary>
    public static int Seals(SafeHandle file)
    {
        using var f = new FdRef(file);
        return LibC.fcntl(f.Fd, LibC.F_GET_SEALS);
    }

    [LibraryImport("libc", EntryPoint = "sendfile", SetLastError = true)]
    private static partial nint SendfileRaw(int outFd, int inFd, long* offset, nint count); // not in Tmds.LibC

    /// <summary>An empty memory file for a library to write into (<see cref="ReadAll"/> reads it back).</summary>
    public static SafeFd Memfd(string name) => CreateMemfd(name, LibC.MFD_CLOEXEC);

    private const uint MFD_EXEC = 0x10; // Linux 6.3; older kernels refuse the flag (EINVAL)

    private static SafeFd CreateExecutableMemfd(string name)
    {
        try
        {
            return CreateMemfd(name, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING | MFD_EXEC);
        }
        catch (LinuxException e) when (e.Errno == LibC.EINVAL)
        {
            return CreateMemfd(name, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
        }
    }

    private static SafeFd CreateMemfd(string name, uint flags)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        int raw;
        fixed (byte* n = nameBytes) raw = LibC.memfd_create(n, flags);
        if (raw < 0) throw LastError("memfd_create", name);
        return new SafeFd(raw);
    }

    /// <summary>Everything in a file, from offset 0 to its size (pread: the descriptor's offset is left alone).</summary>
    public static byte[] ReadAll(SafeFd file, string name)
    {
        using var f = new FdRef(file);
        stat st;
        if (LibC.fstat(f.Fd, &st) < 0) throw LastError("fstat", name);
        var bytes = new byte[st.st_size];
        var done = 0;
        fixed (byte* p = bytes)
            while (done < bytes.Length)
            {
                var n = LibC.pread(f.Fd, p + done, bytes.Length - done, done);
                if (n < 0 && Errno == LibC.EINTR) continue;
                if (n < 0) throw LastError("pread", name);
                if (n == 0) break;
                done += (int)n;
            }
        return done == bytes.Length ? bytes : bytes[..done];
    }

    private static void WriteAll(int fd, ReadOnlySpan<byte> bytes, string name)
    {
        fixed (byte* p = bytes)
        {
            var done = 0;
            while (done < bytes.Length)
            {
                var n = LibC.write(fd, p + done, bytes.Length - done);
                if (n < 0)
                {
                    if (Errno == LibC.EINTR) continue;
                    throw LastError("write", name);
                }
                done += (int)n;
            }
        }
    }
}
