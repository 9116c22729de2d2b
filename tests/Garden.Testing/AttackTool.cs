using System.Diagnostics;

namespace Garden.Testing;

/// <summary>The escape suite's attack programs: small C files in tests/attack/NAME.c, compiled once per test run with
/// `gcc -static` (a container's busybox rootfs has no libc) into a temp dir under /tmp/garden-test-*, so a test can put
/// the binary into a container (stream-in, or a read-only bind mount) and run it there as an attacker would.</summary>
public static class AttackTool
{
    private static readonly Dictionary<string, Lazy<string>> Built = new();
    private static readonly Lazy<string> Dir = new(() =>
    {
        var dir = TestPaths.NewTempDir("attack");
        // the binaries go with the test process (a container that bind-mounted them is destroyed by then)
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        };
        return dir;
    });

    /// <summary>The path of the static binary built from tests/attack/<paramref name="name"/>.c.</summary>
    public static string Path(string name)
    {
        Lazy<string> lazy;
        lock (Built)
            if (!Built.TryGetValue(name, out lazy!)) Built[name] = lazy = new Lazy<string>(() => Build(name));
        return lazy.Value;
    }

    private static string Build(string name)
    {
        var source = System.IO.Path.Combine(TestPaths.RepoRoot, "tests", "attack", name + ".c");
        if (!File.Exists(source)) throw new FileNotFoundException($"attack tool source {source} missing");
        var output = System.IO.Path.Combine(Dir.Value, name);
        var psi = new ProcessStartInfo("gcc") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-static", "-O1", "-Wall", "-o", output, source }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"gcc {source} failed ({p.ExitCode}): {err}");
        // readable and executable by every uid: a container's root may be an unprivileged host uid
        File.SetUnixFileMode(Dir.Value, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(output, (UnixFileMode)0b111_101_101);
        return output;
    }
}
