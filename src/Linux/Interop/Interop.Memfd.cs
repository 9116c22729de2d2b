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
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        int raw;
        fixed (byte* n = nameBytes) raw = LibC.memfd_create(n, LibC.MFD_CLOEXEC);
        if (raw < 0) throw LastError("memfd_create", name);
        var fd = new SafeFd(raw);
        try
        {
            var bytes = Encoding.UTF8.GetBytes(content);
            fixed (byte* p = bytes)
            {
                var done = 0;
                while (done < bytes.Length)
                {
                    var n = LibC.write(raw, p + done, bytes.Length - done);
                    if (n < 0)
                    {
                        if (Errno == LibC.EINTR) continue;
                        throw LastError("write", name);
                    }
                    done += (int)n;
                }
            }
            if (LibC.lseek(raw, 0, LibC.SEEK_SET) < 0) throw LastError("lseek", name);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }
}
