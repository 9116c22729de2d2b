using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests.Escape;

/// <summary>Issue 10's seccomp filter, from inside an ordinary container of a real gardend: nested user namespaces and the
/// kernel keyring are refused with EPERM (never a kill), ordinary work goes on. The attack program's control (the same
/// program escaping without the filter) is in Garden.Linux.Tests.SeccompContainerTests.</summary>
public sealed class SeccompEscapeTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private static string AttackDir => Path.GetDirectoryName(AttackTool.Path("syscalls"))!;

    [InstallFact]
    public async Task An_unprivileged_container_cannot_make_a_user_namespace_nor_reach_the_keyring_and_everything_else_works()
    {
        var h = Unique("seccomp");
        try
        {
            Ok(await D.CliAsync("create", "--handle", h, "--bind-mount", $"{AttackDir}:/attack"));

            // one filter (the agent's, which every process inherits), installed before anything of the container ran
            var status = await D.CliAsync("run", h, "--", "grep", "-E", "^Seccomp(_filters)?:", "/proc/self/status");
            Assert.Equal("Seccomp:\t2\nSeccomp_filters:\t1\n", status.Stdout);

            var unshare = await D.CliAsync("run", h, "--", "unshare", "-U", "true");
            Assert.NotEqual(0, unshare.ExitCode);
            Assert.Contains("Operation not permitted", unshare.Stderr + unshare.Stdout);

            var probe = await D.CliAsync("run", h, "--", "/attack/syscalls");
            Assert.True(probe.ExitCode == 1, probe.ToString());
            foreach (var line in (string[])
                     [
                         "unshare(CLONE_NEWUSER): EPERM", "clone(CLONE_NEWUSER): EPERM", "clone3(CLONE_NEWUSER): ENOSYS",
                         "keyctl(GET_KEYRING_ID, session): EPERM", "keyctl(JOIN_SESSION_KEYRING): EPERM", "add_key(user): EPERM",
                         "request_key(user): EPERM", "clone(SIGCHLD): ok", "mseal: ENOSYS",
                         .. I386Entry.Lines("int80 getpid: ok", "int80 unshare(CLONE_NEWUSER): EPERM", "int80 socketcall(SYS_SOCKET, AF_VSOCK): EPERM"),
                         "socket(AF_VSOCK | 1<<32): EPERM", "contained",
                     ])
                Assert.Contains(line + "\n", probe.Stdout);

            // Ordinary work: a shell pipeline, files, a TTY, a TCP connection inside the container, stream-in and out.
            var sh = await D.CliAsync("run", h, "--", "sh", "-c", "ls / >/dev/null && echo abc | tr a-c x-z && echo hi > /tmp/f && cat /tmp/f");
            Assert.Equal("xyz\nhi\n", sh.Stdout);
            var tty = await D.CliAsync("run", h, "--tty", "--", "sh", "-c", "tty; stty size");
            Assert.Matches(@"^/dev/pts/\d+\r?\n24 80\r?\n$", tty.Stdout);
            var tcp = await D.CliAsync("run", h, "--", "sh", "-c", "(nc -l -p 7070 -e echo served &); sleep 0.3; nc 127.0.0.1 7070 </dev/null");
            Assert.Equal("served\n", tcp.Stdout);
            var tarDir = TestPaths.NewTempDir("seccomp-tar");
            try
            {
                var tar = Path.Combine(tarDir, "x.tar");
                Ok(await Net.RunWithInput("/bin/sh", ["-c", $"{TestPaths.CliBinary} --socket {D.Socket} stream-out {h} /tmp/f > {tar}"], null));
                Ok(await Net.RunWithInput("/bin/sh", ["-c", $"{TestPaths.CliBinary} --socket {D.Socket} stream-in {h} /copied < {tar}"], null));
            }
            finally { Directory.Delete(tarDir, recursive: true); }
            Assert.Equal("hi\n", (await D.CliAsync("run", h, "--", "cat", "/copied/f")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
        Assert.Empty(Host.Leftovers(D, h));
    }

    private static void Ok(CliResult r) => Assert.True(r.ExitCode == 0, r.ToString());
}
