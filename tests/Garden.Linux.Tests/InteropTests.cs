using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Garden.Linux.Interop;
using Garden.Testing;
using Tmds.Linux;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The system-call layer: raw calls only in src/Linux/Interop, constants from Tmds.LibC, one SafeFd, and errno
/// turned into an exception that names the call, the path and the errno text.</summary>
public sealed partial class InteropTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("interop");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The daemon's own code: gardend and the libraries it is made of (the agent and the CLI are programs of their
    /// own with native layers of their own).</summary>
    private static readonly string[] DaemonSources = ["src/Linux", "src/Actors", "src/Host", "src/Protocol"];

    private static IEnumerable<(string File, int Line, string Text)> SourceLines(params string[] dirs)
    {
        foreach (var dir in dirs)
        foreach (var file in Directory.EnumerateFiles(Path.Combine(TestPaths.RepoRoot, dir), "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(TestPaths.RepoRoot, file);
            if (relative.Split('/').Any(p => p is "obj" or "bin")) continue;
            var n = 0;
            foreach (var line in File.ReadLines(file)) yield return (relative, ++n, line);
        }
    }

    [GeneratedRegex(@"\bLibC\.[a-z_][a-z0-9_]*\s*\(|\[(LibraryImport|DllImport)\(")]
    private static partial Regex RawCall();

    [Fact]
    public void Raw_system_calls_are_made_only_in_src_Linux_Interop()
    {
        var outside = SourceLines(DaemonSources)
            .Where(l => !l.File.StartsWith("src/Linux/Interop/", StringComparison.Ordinal) && RawCall().IsMatch(l.Text))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}")
            .ToList();
        Assert.True(outside.Count == 0, "raw calls outside src/Linux/Interop:\n" + string.Join("\n", outside));
    }

    [GeneratedRegex(@"\b(E[A-Z0-9]{2,}|O_[A-Z]+|SIG[A-Z]+|AF_[A-Z0-9]+|SOCK_[A-Z]+|MS_[A-Z]+|MNT_[A-Z]+|CLONE_[A-Z]+)\s*=\s*-?(0x)?[0-9]")]
    private static partial Regex HandTypedConstant();

    [Fact]
    public void Errno_and_flag_constants_come_from_Tmds_LibC_not_from_hand_typed_numbers()
    {
        var typed = SourceLines(DaemonSources)
            .Where(l => HandTypedConstant().IsMatch(l.Text))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}")
            .ToList();
        Assert.True(typed.Count == 0, "hand-typed constants (use LibC.X):\n" + string.Join("\n", typed));
    }

    [Fact]
    public void Every_fd_is_a_SafeFd_and_every_import_is_in_Sys()
    {
        var assemblies = new[] { typeof(Sys).Assembly, Assembly.Load(new AssemblyName("Garden.Actors")) };
        var types = assemblies.SelectMany(a => a.GetTypes()).ToList();
        Assert.Equal([typeof(SafeFd)], types.Where(t => t.IsSubclassOf(typeof(SafeHandle))));
        var imports = types
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Where(m => m.Attributes.HasFlag(MethodAttributes.PinvokeImpl))
            .ToList();
        Assert.NotEmpty(imports);
        Assert.All(imports, m => Assert.Equal(typeof(Sys), m.DeclaringType));
    }

    [Fact]
    public void A_failed_call_names_the_call_the_path_and_the_errno_text()
    {
        var missing = Path.Combine(_dir, "no-such-file");
        var e = Assert.Throws<LinuxException>(() => Sys.Open(missing, LibC.O_RDONLY));
        Assert.Equal(("open", missing, LibC.ENOENT), (e.Call, e.PathName, e.Errno));
        Assert.Equal($"open {missing}: No such file or directory (errno 2)", e.Message);
        Assert.Null(Sys.TryOpen(missing, LibC.O_RDONLY));
    }

    [Fact]
    public void A_path_with_a_NUL_is_refused_instead_of_cut_short()
    {
        // Without the check the kernel would see only "<dir>" and open the directory itself.
        var e = Assert.Throws<ArgumentException>(() => Sys.Open(_dir + "\0/../../etc/shadow", LibC.O_RDONLY));
        Assert.Contains("must not contain a NUL", e.Message);
        Assert.Contains(_dir, e.Message);
    }

    [Fact]
    public async Task A_SafeFd_closes_its_fd_once_and_refuses_use_after_dispose()
    {
        var (read, write) = Sys.Pipe();
        using var _ = read;
        write.Dispose();
        write.Dispose();
        // the only write end is closed: the reader sees end-of-file instead of blocking
        using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(read.DangerousGetHandle(), ownsHandle: false), FileAccess.Read, 1);
        Assert.Equal(-1, await Task.Run(stream.ReadByte).WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Throws<ObjectDisposedException>(() => Sys.FcntlDupCloexec(write, 100));
    }

    [Fact]
    public void An_eventfd_counts_what_is_written_and_a_read_resets_it()
    {
        using var efd = Sys.Eventfd(0);
        Sys.EventfdWrite(efd, 2);
        Sys.EventfdWrite(efd, 3);
        Assert.Equal(5ul, Sys.EventfdRead(efd));
        Sys.EventfdWrite(efd, 1);
        Assert.Equal(1ul, Sys.EventfdRead(efd));
    }

    [Fact]
    public async Task A_pidfd_polls_readable_when_its_process_exits_and_a_gone_process_is_already_done()
    {
        using var sleep = System.Diagnostics.Process.Start("/bin/sleep", "30");
        using var pidfd = Sys.PidfdOpen(sleep.Id);
        Assert.NotNull(pidfd);
        Assert.False(Sys.PollReadable(pidfd, 0, "pidfd"));
        Assert.True(Sys.PidfdSendSignal(pidfd, LibC.SIGKILL));
        Assert.True(Sys.PollReadable(pidfd, 5000, "pidfd"));
        await sleep.WaitForExitAsync();
        Assert.Equal(128 + LibC.SIGKILL, sleep.ExitCode);
        Assert.False(Sys.PidfdSendSignal(pidfd, LibC.SIGKILL)); // reaped: ESRCH means done, not an error
    }
}
