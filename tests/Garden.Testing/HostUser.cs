using System.Diagnostics;

namespace Garden.Testing;

/// <summary>Runs a program on the host as an unprivileged user (setpriv: real and effective uid and gid, no
/// supplementary groups), as a local attacker would.</summary>
public static class HostUser
{
    public const int Nobody = 65534;

    /// <summary>Runs <paramref name="program"/> as uid/gid <paramref name="uid"/> from "/"; its exit code and output.</summary>
    public static async Task<CliResult> RunAsync(int uid, string program, params string[] args)
    {
        var psi = new ProcessStartInfo("setpriv")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/",
        };
        // setpriv keeps its capabilities until it execs, so its own execve walks the path as root: a shell it starts
        // (with none left) runs the program, as the attacker's own shell would.
        foreach (var a in new[] { $"--reuid={uid}", $"--regid={uid}", "--clear-groups", "--", "/bin/sh", "-c", "exec \"$0\" \"$@\"", program }.Concat(args))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(cts.Token);
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    public static Task<CliResult> NobodyAsync(string program, params string[] args) => RunAsync(Nobody, program, args);

    /// <summary>Makes a test's temp dir (0700 from mkdtemp) traversable like /var/lib, so what decides whether an
    /// unprivileged user reaches the state dir is the state dir itself.</summary>
    public static void Traversable(string dir) =>
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
}
