using System.Formats.Tar;
using Garden.Protocol.Agent;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using static Garden.Agent.Tar.FsNative;
using static Tmds.Linux.LibC;

namespace Garden.Agent.Tar;

/// <summary>
/// Writes a tar (pax) of a file or directory. Warden's rule: PATH `dir` gives `dir/` and everything under it, `dir/` only what
/// is inside. Every entry is lstat'ed and opened O_NOFOLLOW: symlinks are stored as symlinks and never followed, hard links
/// are stored as regular files, and uid/gid/mode/mtime are the numbers as seen in the container.
/// </summary>
internal static class TarArchiver
{
    public static void Write(string path, Stream output)
    {
        TarTool.CheckPath(path, "path");
        using var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        bool contents = path.EndsWith('/') || path.EndsWith("/.") || path == ".";
        string trimmed = path.TrimEnd('/');
        if (contents || trimmed.Length == 0)
        {
            string dir = trimmed.Length == 0 ? "/" : trimmed;
            if (FstatAt(AT_FDCWD, dir, out var st, 0) != 0) throw Missing(Errno, path);
            if (!S_ISDIR(st.st_mode)) throw new ToolException(ToolExit.ToolBadInput, $"path {path} is not a directory (a trailing / means its contents)");
            // as `tar -C dir .` writes it, and Garden's suite reads it: "./" (the directory itself: its mode and owner), then "./x"
            writer.WriteEntry(Entry(TarEntryType.Directory, "./", st));
            AddChildren(writer, dir, "./");
            return;
        }
        if (FstatAt(AT_FDCWD, trimmed, out _, AT_SYMLINK_NOFOLLOW) != 0) throw Missing(Errno, path);
        Add(writer, trimmed, Path.GetFileName(trimmed), top: true);
    }

    private static ToolException Missing(int errno, string path) => errno == ENOENT || errno == ENOTDIR
        ? new ToolException(ToolExit.ToolNotFound, $"path {path} does not exist in the container")
        : ToolException.FromErrno(errno, $"path {path}");

    private static void Add(TarWriter writer, string fsPath, string name, bool top = false)
    {
        if (FstatAt(AT_FDCWD, fsPath, out var st, AT_SYMLINK_NOFOLLOW) != 0)
        {
            if (!top && Errno == ENOENT) return; // removed while we walked
            throw Missing(Errno, fsPath);
        }
        if (S_ISDIR(st.st_mode))
        {
            writer.WriteEntry(Entry(TarEntryType.Directory, name + "/", st));
            AddChildren(writer, fsPath, name + "/");
        }
        else if (S_ISREG(st.st_mode))
        {
            int fd = OpenAt(AT_FDCWD, fsPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0);
            if (fd < 0)
            {
                if (!top && Errno == ENOENT) return;
                throw ToolException.FromErrno(Errno, $"reading {fsPath}");
            }
            using var data = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
            var entry = Entry(TarEntryType.RegularFile, name, st);
            entry.DataStream = data;
            writer.WriteEntry(entry);
        }
        else if (S_ISLNK(st.st_mode))
        {
            var entry = Entry(TarEntryType.SymbolicLink, name, st);
            entry.LinkName = new FileInfo(fsPath).LinkTarget ?? "";
            writer.WriteEntry(entry);
        }
        else if (S_ISFIFO(st.st_mode))
        {
            writer.WriteEntry(Entry(TarEntryType.Fifo, name, st));
        }
        else
        {
            Console.Error.WriteLine($"{fsPath}: sockets and device nodes are not archived; skipped");
        }
    }

    private static void AddChildren(TarWriter writer, string dir, string prefix)
    {
        string[] children;
        try
        {
            children = Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).OfType<string>().ToArray();
        }
        catch (UnauthorizedAccessException)
        {
            throw new ToolException(ToolExit.ToolDenied, $"cannot read directory {dir}: permission denied");
        }
        catch (DirectoryNotFoundException)
        {
            return;
        }
        Array.Sort(children, StringComparer.Ordinal);
        string sep = dir.EndsWith('/') ? "" : "/";
        foreach (var child in children) Add(writer, dir + sep + child, prefix + child);
    }

    private static PaxTarEntry Entry(TarEntryType type, string name, in stat st) => new(type, name)
    {
        Mode = (UnixFileMode)((ushort)st.st_mode & 0xFFF),
        Uid = (int)(uint)st.st_uid,
        Gid = (int)(uint)st.st_gid,
        ModificationTime = DateTimeOffset.FromUnixTimeSeconds(st.st_mtim.tv_sec).AddTicks(st.st_mtim.tv_nsec / 100),
    };
}
