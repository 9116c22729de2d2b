using System.Formats.Tar;
using Garden.Protocol.Agent;
using Tmds.Linux;
using static Garden.Agent.Tar.FsNative;
using static Tmds.Linux.LibC;

namespace Garden.Agent.Tar;

/// <summary>
/// Extracts a tar read from a stream under a destination directory (created if missing). Every entry is resolved from a
/// directory fd of the destination one component at a time with O_NOFOLLOW|O_DIRECTORY, and the last component is never
/// followed either (an existing entry is unlinked, files are created O_EXCL|O_NOFOLLOW): neither an archive's own symlinks
/// nor ones a process of the container plants or swaps in while it runs can redirect a write outside the destination.
/// Absolute names and `..` components are refused with the entry named. As root, entries get their numeric uid/gid; as any
/// other user they belong to that user. Hard links are materialized as copies of the file extracted earlier.
/// </summary>
internal sealed class TarExtractor
{
    private static readonly int DirOpen = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

    private readonly string _dest;
    private readonly bool _asRoot = Geteuid() == 0;
    private readonly List<(string[] Parts, string Name, uint Mode, DateTimeOffset Mtime)> _dirs = [];
    /// <summary>One write(2) per chunk of a file (a smaller one for its tail).</summary>
    internal const int ChunkBytes = 256 * 1024;

    private readonly byte[] _buffer = new byte[ChunkBytes];

    public TarExtractor(string dest)
    {
        _dest = TarTool.CheckPath(dest, "destination");
    }

    public void Extract(Stream input)
    {
        Umask(0);
        using var root = OpenDestination();
        var counted = new CountingStream(input);
        using var reader = new TarReader(counted, leaveOpen: true);
        int entries = 0;
        while (true)
        {
            TarEntry? entry;
            try
            {
                entry = reader.GetNextEntry(copyData: false);
            }
            catch (Exception e) when (e is InvalidDataException or FormatException or EndOfStreamException or ArgumentException
                                          or InvalidOperationException)
            {
                throw new ToolException(ToolExit.ToolBadInput, entries == 0
                    ? $"the input is not a tar archive (no valid tar header in its first {counted.Count} bytes)"
                    : $"the tar archive is corrupt or truncated after {entries} entries (at byte {counted.Count})");
            }
            if (entry is null) break;
            entries++;
            Apply(root, entry);
        }
        if (counted.Count == 0) throw new ToolException(ToolExit.ToolBadInput, "the input is empty, not a tar archive");
        // directories last, deepest first: their mode may forbid writing and extracting changed their mtime
        for (int i = _dirs.Count - 1; i >= 0; i--)
        {
            var (parts, name, mode, mtime) = _dirs[i];
            using var dir = Walk(root, parts, name, create: false);
            if (Fchmod(dir.Value, (ushort)mode) != 0) throw ToolException.FromErrno(Errno, $"chmod {name}");
            SetTimes(dir.Value, null, mtime, 0, name);
        }
    }

    /// <summary>DEST itself is the caller's choice (resolved in the container's root, so even a symlink stays inside);
    /// it is created with its parents if missing.</summary>
    private Fd OpenDestination()
    {
        int fd = OpenAt(AT_FDCWD, _dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0 && Errno == ENOENT)
        {
            string prefix = _dest.StartsWith('/') ? "/" : "";
            foreach (var part in _dest.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                prefix += part;
                if (MkdirAt(AT_FDCWD, prefix, 0b111_101_101) != 0 && Errno != EEXIST)
                    throw ToolException.FromErrno(Errno, $"cannot create destination {_dest} (at {prefix})");
                prefix += "/";
            }
            fd = OpenAt(AT_FDCWD, _dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        }
        if (fd < 0)
        {
            int errno = Errno;
            throw errno == ENOTDIR
                ? new ToolException(ToolExit.ToolBadInput, $"destination {_dest} is not a directory")
                : ToolException.FromErrno(errno, $"destination {_dest}");
        }
        return new Fd(fd);
    }

    private void Apply(Fd root, TarEntry entry)
    {
        string name = entry.Name;
        var parts = Components(name, name);
        if (entry.EntryType is TarEntryType.GlobalExtendedAttributes) return;
        if (parts.Length == 0) return; // "./": the destination itself keeps its own owner and mode
        string leaf = parts[^1];
        using var parent = Walk(root, parts.AsSpan(0, parts.Length - 1), name, create: true);
        uint mode = (uint)entry.Mode & 0xFFF;
        switch (entry.EntryType)
        {
            case TarEntryType.Directory:
                MakeDirectory(parent, leaf, name, entry);
                _dirs.Add((parts, name, mode, entry.ModificationTime));
                break;
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                WriteFile(parent, leaf, name, entry, entry.DataStream);
                break;
            case TarEntryType.HardLink:
            {
                var target = Components(entry.LinkName, name);
                if (target.Length == 0) throw new ToolException(ToolExit.ToolBadInput, $"entry {name}: hard link to the destination itself");
                using var srcDir = Walk(root, target.AsSpan(0, target.Length - 1), name, create: false);
                int fd = OpenAt(srcDir.Value, target[^1], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0);
                if (fd < 0 || FstatAt(fd, "", out var st, AT_EMPTY_PATH) != 0 || !S_ISREG(st.st_mode))
                {
                    if (fd >= 0) Close(fd);
                    throw new ToolException(ToolExit.ToolBadInput,
                        $"entry {name}: hard link to {entry.LinkName}, which is not a regular file extracted earlier from this archive");
                }
                using var source = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read);
                WriteFile(parent, leaf, name, entry, source);
                break;
            }
            case TarEntryType.SymbolicLink:
                RemoveExisting(parent, leaf, name);
                if (SymlinkAt(entry.LinkName, parent.Value, leaf) != 0) throw ToolException.FromErrno(Errno, $"entry {name}: symlink");
                if (_asRoot && FchownAt(parent.Value, leaf, (uint)entry.Uid, (uint)entry.Gid, AT_SYMLINK_NOFOLLOW) != 0)
                    throw ToolException.FromErrno(Errno, $"entry {name}: chown");
                SetTimes(parent.Value, leaf, entry.ModificationTime, AT_SYMLINK_NOFOLLOW, name);
                break;
            case TarEntryType.Fifo:
                RemoveExisting(parent, leaf, name);
                if (MkfifoAt(parent.Value, leaf, (ushort)mode) != 0) throw ToolException.FromErrno(Errno, $"entry {name}: mkfifo");
                if (_asRoot && FchownAt(parent.Value, leaf, (uint)entry.Uid, (uint)entry.Gid, AT_SYMLINK_NOFOLLOW) != 0)
                    throw ToolException.FromErrno(Errno, $"entry {name}: chown");
                break;
            case TarEntryType.CharacterDevice or TarEntryType.BlockDevice:
                Console.Error.WriteLine($"entry {name}: device nodes are not extracted; skipped");
                break;
            default:
                throw new ToolException(ToolExit.ToolBadInput, $"entry {name}: unsupported tar entry type {entry.EntryType}");
        }
    }

    /// <summary>The components of an entry's name; absolute names and `..` are refused (they could only mean a path
    /// outside the destination).</summary>
    internal static string[] Components(string name, string entry)
    {
        if (name.StartsWith('/'))
            throw new ToolException(ToolExit.ToolBadInput, $"entry {entry}: absolute names are not accepted (names are relative to the destination)");
        if (name.Contains('\0')) throw new ToolException(ToolExit.ToolBadInput, $"entry {entry}: the name contains a NUL byte");
        var parts = name.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();
        if (Array.IndexOf(parts, "..") >= 0)
            throw new ToolException(ToolExit.ToolBadInput, $"entry {entry}: '..' is not accepted in names (it would leave the destination)");
        return parts;
    }

    /// <summary>Opens the directory at parts under root without following any symlink, creating missing ones.</summary>
    private static Fd Walk(Fd root, ReadOnlySpan<string> parts, string entry, bool create)
    {
        var cur = new Fd(OpenAt(root.Value, ".", DirOpen, 0));
        if (cur.IsInvalid) throw ToolException.FromErrno(Errno, "opening the destination");
        for (int i = 0; i < parts.Length; i++)
        {
            int fd = OpenAt(cur.Value, parts[i], DirOpen, 0);
            if (fd < 0 && Errno == ENOENT && create)
            {
                if (MkdirAt(cur.Value, parts[i], 0b111_101_101) != 0 && Errno != EEXIST)
                {
                    int e = Errno;
                    cur.Dispose();
                    throw ToolException.FromErrno(e, $"entry {entry}: mkdir {string.Join('/', parts[..(i + 1)].ToArray())}");
                }
                fd = OpenAt(cur.Value, parts[i], DirOpen, 0);
            }
            if (fd < 0)
            {
                int errno = Errno;
                cur.Dispose();
                string prefix = string.Join('/', parts[..(i + 1)].ToArray());
                throw errno == ELOOP || errno == ENOTDIR
                    ? new ToolException(ToolExit.ToolBadInput,
                        $"entry {entry}: {prefix} in the destination is a symlink or not a directory; it is never followed")
                    : ToolException.FromErrno(errno, $"entry {entry}: opening {prefix}");
            }
            cur.Dispose();
            cur = new Fd(fd);
        }
        return cur;
    }

    private void MakeDirectory(Fd parent, string leaf, string name, TarEntry entry)
    {
        // 0700 until the end: the archive's mode may forbid writing what comes inside
        if (MkdirAt(parent.Value, leaf, 0b111_000_000) != 0)
        {
            if (Errno != EEXIST) throw ToolException.FromErrno(Errno, $"entry {name}: mkdir");
            if (FstatAt(parent.Value, leaf, out var st, AT_SYMLINK_NOFOLLOW) != 0) throw ToolException.FromErrno(Errno, $"entry {name}: stat");
            if (!S_ISDIR(st.st_mode))
            {
                RemoveExisting(parent, leaf, name);
                if (MkdirAt(parent.Value, leaf, 0b111_000_000) != 0) throw ToolException.FromErrno(Errno, $"entry {name}: mkdir");
            }
        }
        if (_asRoot && FchownAt(parent.Value, leaf, (uint)entry.Uid, (uint)entry.Gid, AT_SYMLINK_NOFOLLOW) != 0)
            throw ToolException.FromErrno(Errno, $"entry {name}: chown");
    }

    private unsafe void WriteFile(Fd parent, string leaf, string name, TarEntry entry, Stream? data)
    {
        int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
        RemoveExisting(parent, leaf, name);
        int fd = OpenAt(parent.Value, leaf, flags, 0b110_000_000);
        if (fd < 0 && Errno == EEXIST)
        {
            // something raced in between: remove it again, once
            RemoveExisting(parent, leaf, name);
            fd = OpenAt(parent.Value, leaf, flags, 0b110_000_000);
        }
        if (fd < 0) throw ToolException.FromErrno(Errno, $"entry {name}: create");
        using var file = new Fd(fd);
        try
        {
            if (data != null)
            {
                // whole chunks: the archive arrives through a pipe in pieces of any size (8 KiB when the container's uid
                // is over the kernel's pipe quota), and each write(2) into the overlay costs more than the bytes it moves
                var buffer = _buffer;
                long written = 0;
                int n;
                while ((n = data.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false)) > 0)
                {
                    fixed (byte* p = buffer)
                    {
                        int off = 0;
                        while (off < n)
                        {
                            long w = Write(fd, p + off, n - off);
                            if (w < 0)
                            {
                                if (Errno == EINTR) continue;
                                int errno = Errno;
                                throw errno == ENOSPC || errno == EDQUOT
                                    ? new ToolException(ToolExit.ToolNoSpace, $"entry {name}: the container's disk is full ({Native.ErrorText(errno)})")
                                    : ToolException.FromErrno(errno, $"entry {name}: write");
                            }
                            off += (int)w;
                        }
                    }
                    written += n;
                    if (n < buffer.Length) break; // the entry's data ended (or the archive did: checked below)
                }
                // a regular file's data ends where its header says; short means the archive was cut inside it (the
                // reader hands back what there was without a word), and a file shorter than its entry is no file of it
                if (ReferenceEquals(data, entry.DataStream) && written != entry.Length)
                    throw new ToolException(ToolExit.ToolBadInput,
                        $"entry {name}: the archive ends inside this file ({written} of its {entry.Length} bytes)");
            }
            if (_asRoot && Fchown(fd, (uint)entry.Uid, (uint)entry.Gid) != 0) throw ToolException.FromErrno(Errno, $"entry {name}: chown");
            if (Fchmod(fd, (ushort)((int)entry.Mode & 0xFFF)) != 0) throw ToolException.FromErrno(Errno, $"entry {name}: chmod");
            SetTimes(fd, null, entry.ModificationTime, 0, name);
        }
        catch
        {
            // leave no half-written file behind
            UnlinkAt(parent.Value, leaf, 0);
            throw;
        }
    }

    /// <summary>Unlinks whatever is at leaf (never following it); an empty directory is removed, a non-empty one is refused.</summary>
    private static void RemoveExisting(Fd parent, string leaf, string name)
    {
        if (FstatAt(parent.Value, leaf, out var st, AT_SYMLINK_NOFOLLOW) != 0)
        {
            if (Errno == ENOENT) return;
            throw ToolException.FromErrno(Errno, $"entry {name}: stat");
        }
        bool dir = S_ISDIR(st.st_mode);
        if (UnlinkAt(parent.Value, leaf, dir ? AT_REMOVEDIR : 0) != 0 && Errno != ENOENT)
        {
            int errno = Errno;
            throw errno == ENOTEMPTY || errno == EEXIST
                ? new ToolException(ToolExit.ToolBadInput, $"entry {name}: a non-empty directory is in the way")
                : ToolException.FromErrno(errno, $"entry {name}: removing what is in the way");
        }
    }

    private static unsafe void SetTimes(int dirfd, string? leaf, DateTimeOffset mtime, int flags, string name)
    {
        var times = stackalloc timespec[2];
        times[0] = times[1] = new timespec { tv_sec = mtime.ToUnixTimeSeconds(), tv_nsec = (long_t)TarTool.Nanos(mtime) };
        int r = leaf is null ? Futimens(dirfd, times) : UtimensAt(dirfd, leaf, times, flags);
        if (r != 0) throw ToolException.FromErrno(Errno, $"entry {name}: setting mtime");
    }

    /// <summary>Counts bytes read, to tell an empty input from an empty archive and to say where a corrupt one broke.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, count);
            Count += n;
            return n;
        }

        public override int Read(Span<byte> buffer)
        {
            int n = inner.Read(buffer);
            Count += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
