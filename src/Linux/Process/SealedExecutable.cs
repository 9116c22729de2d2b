using System.Collections.Concurrent;
using Garden.Linux.Interop;
using System.Runtime.InteropServices;

namespace Garden.Linux.Process;

/// <summary>One sealed in-memory copy of an executable, run in place of its file. runc's init protects its binary at every
/// container start — its defence against CVE-2019-5736, a container overwriting the host's runc through /proc/self/exe —
/// unless it already runs from a sealed memfd: runc's cloned_binary.c asks F_GET_SEALS of /proc/self/exe for exactly these
/// four seals (write, grow, shrink, seal) and then skips it, and runc ships contrib/cmd/memfd-bind to hand it such a copy.
/// runc 1.1's protection is a read-only bind mount of its own file in the host's mount namespace (a file made in its state
/// dir, mount, remount, open, unmount) and a second exec of runc from it; older runc copies itself into a memfd. gardend
/// keeps the sealed copy itself, so a Create does neither (runc run --detach: ~4 ms less CPU, bench/FINDINGS-create.md,
/// and two mount changes fewer on the host's mount table, which every Create in a burst queues on). Nothing can write the
/// copy, the container's root included: every write, truncate and writable shared mapping of a sealed memfd fails.
/// <para>The file is looked at before each use (statx: device, inode, size, times) and copied again once it changed, so an
/// upgraded runc is run from its new bytes by the next Create; a copy of a file changed in the last 2 s is used once and
/// not kept (a rewrite within the timestamps' granularity would not show). A file that is not ELF (a script) is run from
/// its path: a script cannot be run through a descriptor that closes on exec. One copy per path per process; it costs the
/// host the binary's size in shared memory (~9 MB for runc) for as long as the process runs.</para></summary>
public sealed class SealedExecutable
{
    private static readonly ConcurrentDictionary<string, SealedExecutable> Shared = new(StringComparer.Ordinal);

    /// <summary>The one instance for <paramref name="path"/> (an absolute path) in this process.</summary>
    public static SealedExecutable For(string path) => Shared.GetOrAdd(path, p => new SealedExecutable(p));

    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);
    private static ReadOnlySpan<byte> Elf => [0x7f, (byte)'E', (byte)'L', (byte)'F'];

    private readonly object _gate = new();
    private Copy? _copy;

    /// <summary>A version of the file and what runs in its place: <paramref name="Memfd"/>, or the path itself when null.</summary>
    private sealed record Copy(SafeFd? Memfd, FileIdentity Of, bool Keep);

    private SealedExecutable(string path) => Path = path;

    /// <summary>The file's own path (what a process run from the copy gets as its argv[0]).</summary>
    public string Path { get; }

    /// <summary>What to exec now: the sealed copy's /proc/self/fd path, valid (in a child spawned from this process) until
    /// the lease is disposed, or the file's path when there is no copy of it.</summary>
    public Lease Take()
    {
        FileIdentity now;
        try
        {
            now = Sys.Identity(Path);
        }
        catch (LinuxException)
        {
            return new Lease(Path);   // gone or unreadable: the spawn fails naming the path
        }
        lock (_gate)
        {
            if (_copy is null || _copy.Of != now || !_copy.Keep)
            {
                var made = Make(now);
                _copy?.Memfd?.Dispose();   // closed once the last lease of it is disposed
                _copy = made;
            }
            return _copy.Memfd is { } memfd ? new Lease(memfd) : new Lease(Path);
        }
    }

    private Copy Make(FileIdentity of)
    {
        // a ctime in the future (the clock stepped back) is as unsure as a recent one, and kept all the same: it would never settle
        var age = DateTime.UtcNow - DateTime.UnixEpoch - TimeSpan.FromTicks(of.ChangedAt / 100);
        var keep = age >= Settle || age <= -Settle;
        SafeFd? memfd = null;
        try
        {
            using var file = File.OpenHandle(Path, FileMode.Open, FileAccess.Read);
            Span<byte> magic = stackalloc byte[4];
            if (RandomAccess.Read(file, magic, 0) != 4 || !magic.SequenceEqual(Elf)) return new Copy(null, of, keep);
            memfd = Sys.MemfdSealedCopy(System.IO.Path.GetFileName(Path), file, of.Size);
            // the file changed while it was copied: run it from its path this time, copy it again next time
            if (Sys.Identity(Path) != of) return new Copy(null, of, Keep: false);
            // above the descriptors a spawn puts its extra files at (3, 4, ...): its /proc/self/fd path must still be the
            // copy in the child when it execs
            return new Copy(Sys.FcntlDupCloexec(memfd, 100), of, keep);
        }
        catch (LinuxException e) when (e.Call.StartsWith("memfd_create", StringComparison.Ordinal))
        {
            return new Copy(null, of, Keep: true);   // this kernel makes no executable memfd (vm.memfd_noexec = 2): the path
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or LinuxException)
        {
            return new Copy(null, of, Keep: false);   // the file went or could not be read: run it from its path
        }
        finally
        {
            memfd?.Dispose();
        }
    }

    /// <summary>The copy could not be exec'd (a security module, or a kernel that will not exec memory files): this
    /// version of the file is run from its path from now on; a new version is tried again.</summary>
    public void ExecFailed(Lease lease)
    {
        lock (_gate)
        {
            if (_copy?.Memfd is { } memfd && lease.Holds(memfd))
            {
                memfd.Dispose();
                _copy = _copy with { Memfd = null, Keep = true };
            }
        }
    }

    /// <summary>The path to exec while this lives (<see cref="Take"/>).</summary>
    public sealed class Lease : IDisposable
    {
        private readonly SafeHandle? _held;
        private int _disposed;

        internal Lease(SafeFd memfd)
        {
            var added = false;
            memfd.DangerousAddRef(ref added);
            _held = memfd;
            ExecPath = $"/proc/self/fd/{(int)memfd.DangerousGetHandle()}";
        }

        internal Lease(string path) => ExecPath = path;

        public string ExecPath { get; }

        internal bool Holds(SafeHandle handle) => ReferenceEquals(_held, handle);

        /// <summary>Whether this is the sealed copy (false: the file's own path).</summary>
        public bool Sealed => _held is not null;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) _held?.DangerousRelease();
        }
    }
}
