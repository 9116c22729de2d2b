using System.Text.Json.Nodes;
using Garden.Linux.Interop;
using Garden.Linux.Process;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The sealed copy gardend runs runc from (<see cref="SealedExecutable"/>), against the real kernel and runc.</summary>
public sealed class SealedExecutableTests : IDisposable
{
    // what runc's cloned_binary.c asks of /proc/self/exe before it skips its own copy: F_SEAL_SEAL | SHRINK | GROW | WRITE
    private const int RuncSeals = 0x1 | 0x2 | 0x4 | 0x8;

    private readonly string _dir = TestPaths.NewTempDir("sealed");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<int> Exit(SealedExecutable.Lease lease, string argv0, params string[] args) =>
        (await Command.RunAsync(lease.ExecPath, argv0, args, CommandOutput.Capture)).ExitCode;

    [Fact]
    public async Task A_binary_runs_from_one_sealed_copy_that_no_one_can_write()
    {
        var busybox = SealedExecutable.For("/bin/busybox");
        using var lease = busybox.Take();
        Assert.True(lease.Sealed);
        Assert.StartsWith("/proc/self/fd/", lease.ExecPath);
        using (var again = busybox.Take()) Assert.Equal(lease.ExecPath, again.ExecPath);   // an old file's copy is kept

        Assert.Equal(File.ReadAllBytes("/bin/busybox"), File.ReadAllBytes(lease.ExecPath));
        using (var copy = File.OpenHandle(lease.ExecPath, FileMode.Open, FileAccess.Read)) Assert.Equal(RuncSeals, Sys.Seals(copy));
        // above the descriptors a spawn dup2s its extra files onto (3, 4, ...), so the path is the copy in the child too
        Assert.True(int.Parse(lease.ExecPath["/proc/self/fd/".Length..]) >= 100, lease.ExecPath);
        // the attack of CVE-2019-5736: open the binary through a path to it (that works), write over it or cut it (refused)
        using (var w = new FileStream(lease.ExecPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1))
        {
            var write = Record.Exception(() => w.Write("#!/bin/sh\n"u8));
            Assert.True(write is IOException or UnauthorizedAccessException, $"{write}");
            var cut = Record.Exception(() => w.SetLength(0));
            Assert.True(cut is IOException or UnauthorizedAccessException, $"{cut}");
        }
        Assert.Equal(File.ReadAllBytes("/bin/busybox"), File.ReadAllBytes(lease.ExecPath));
        // a spawn with extra files at 3.. still execs the copy
        var extras = Enumerable.Range(0, 8).Select(_ => File.OpenHandle("/dev/null")).ToList();
        try
        {
            var r = await Command.RunAsync(lease.ExecPath, "sh", ["-c", "exit 4"], new CommandOutput(ExtraFiles: extras));
            Assert.Equal(4, r.ExitCode);
        }
        finally
        {
            extras.ForEach(e => e.Dispose());
        }

        // a process run from it has the sealed copy as /proc/self/exe: what runc's init checks
        var pidFile = Path.Combine(_dir, "pid");
        var running = Command.RunAsync(lease.ExecPath, "sh", ["-c", $"echo $$ > {pidFile}.tmp; mv {pidFile}.tmp {pidFile}; sleep 5"],
            CommandOutput.Capture);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.Exists(pidFile) && DateTime.UtcNow < deadline) await Task.Delay(10);
        var pid = int.Parse(File.ReadAllText(pidFile).Trim());
        try
        {
            Assert.StartsWith("/memfd:busybox", new FileInfo($"/proc/{pid}/exe").LinkTarget);
            using var exe = File.OpenHandle($"/proc/{pid}/exe", FileMode.Open, FileAccess.Read);
            Assert.Equal(RuncSeals, Sys.Seals(exe));
        }
        finally
        {
            Tmds.Linux.LibC.kill(pid, Tmds.Linux.LibC.SIGKILL);
            await running;
        }
    }

    [Fact]
    public async Task A_file_replaced_or_rewritten_is_run_from_its_new_bytes_while_a_lease_keeps_the_old()
    {
        var prog = Path.Combine(_dir, "prog");
        File.Copy("/usr/bin/true", prog);
        var sealedProg = SealedExecutable.For(prog);
        var first = sealedProg.Take();
        Assert.True(first.Sealed);
        Assert.Equal(0, await Exit(first, prog));

        // replaced by rename, as a package upgrade does
        File.Copy("/usr/bin/false", prog + ".new");
        File.Move(prog + ".new", prog, overwrite: true);
        using (var second = sealedProg.Take())
        {
            Assert.True(second.Sealed);
            Assert.Equal(1, await Exit(second, prog));
            Assert.Equal(0, await Exit(first, prog));   // the lease taken before still runs what it was given
        }
        var firstFd = first.ExecPath;
        first.Dispose();
        Assert.False(new FileInfo(firstFd).LinkTarget?.StartsWith("/memfd:prog", StringComparison.Ordinal) == true
                     && File.ReadAllBytes(firstFd).AsSpan().SequenceEqual(File.ReadAllBytes("/usr/bin/true")),
            "the replaced copy was not closed with its last lease");

        // rewritten in place, twice within a second (inside the timestamps' granularity): each version is the one run
        foreach (var (source, code) in new[] { ("/usr/bin/true", 0), ("/usr/bin/false", 1), ("/usr/bin/true", 0) })
        {
            File.Copy(source, prog, overwrite: true);
            using var lease = sealedProg.Take();
            Assert.Equal(code, await Exit(lease, prog));
        }
    }

    [Fact]
    public async Task A_settled_file_keeps_its_copy_until_it_is_replaced_and_a_copy_that_would_not_exec_gives_way_to_the_path()
    {
        var prog = Path.Combine(_dir, "settled");
        File.Copy("/usr/bin/true", prog);
        await Task.Delay(TimeSpan.FromSeconds(2.2));   // older than the 2 s in which a rewrite might not show
        var sealedProg = SealedExecutable.For(prog);
        using (var first = sealedProg.Take())
        using (var second = sealedProg.Take())
        {
            Assert.True(first.Sealed);
            Assert.Equal(first.ExecPath, second.ExecPath);   // the same copy, not made again
            Assert.Equal(0, await Exit(first, prog));
        }
        File.Copy("/usr/bin/false", prog + ".new");
        File.Move(prog + ".new", prog, overwrite: true);
        using (var replaced = sealedProg.Take())
        {
            Assert.True(replaced.Sealed);
            Assert.Equal(1, await Exit(replaced, prog));   // the identity changed: copied again
            // an exec of the copy that failed (as under a security module that refuses memory files): the path from then on
            sealedProg.ExecFailed(replaced);
        }
        using (var after = sealedProg.Take())
        {
            Assert.False(after.Sealed);
            Assert.Equal(prog, after.ExecPath);
            Assert.Equal(1, await Exit(after, prog));
        }
    }

    [Fact]
    public async Task A_script_or_a_missing_file_is_run_from_its_path()
    {
        var script = Path.Combine(_dir, "script");
        File.WriteAllText(script, "#!/bin/sh\nexit 3\n");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        using (var lease = SealedExecutable.For(script).Take())
        {
            Assert.False(lease.Sealed);
            Assert.Equal(script, lease.ExecPath);
            Assert.Equal(3, await Exit(lease, script));
        }
        var missing = Path.Combine(_dir, "missing");
        using (var lease = SealedExecutable.For(missing).Take())
        {
            Assert.False(lease.Sealed);
            var e = await Assert.ThrowsAsync<LinuxException>(() => Exit(lease, missing));
            Assert.Contains(missing, e.Message);
        }
    }

    /// <summary>The contract with runc: its init, run from the copy, takes it as its protected binary and runs on. `runc
    /// create` leaves the init waiting for `runc start`, so /proc/PID shows what it did. Run from runc's file, the init
    /// protects itself first (runc 1.1: a read-only bind mount of its own file in the host's mount namespace, opened,
    /// unmounted, and runc exec'd a second time from it with _LIBCONTAINER_CLONED_BINARY=1 added to its environment; older
    /// runc: a memfd copy), so this can fail. Run from our copy: no second exec, and its binary is our copy.</summary>
    [Fact]
    public async Task Runc_run_from_the_copy_does_not_protect_itself_again()
    {
        var runc = Command.Resolve("runc");
        var ours = SealedExecutable.For(runc).Take();
        Assert.True(ours.Sealed);
        var copy = Sys.Identity(ours.ExecPath);
        var (fromCopy, reExecd) = await Init(runc, ours);
        Assert.Equal(copy, fromCopy);
        Assert.False(reExecd, "runc's init exec'd itself again from our sealed copy");
        var (fromFile, reExecdFromFile) = await Init(runc, null);
        Assert.NotEqual(copy, fromFile);
        // runc 1.1 marks its second exec so (runc 1.2 protects itself another way and has no such mark)
        if ((await Command.RunAsync(runc, ["--version"])).Stdout.StartsWith("runc version 1.1.", StringComparison.Ordinal))
            Assert.True(reExecdFromFile, "runc's init run from its file did not protect itself: this test cannot tell the two apart");
    }

    private int _containers;

    /// <summary>`runc create` of a minimal bundle; the identity of the binary its waiting init runs, and whether it exec'd
    /// itself a second time; then the container removed. With a lease, runc is run from it (and the init's binary must be
    /// sealed as runc wants it); without, from its file.</summary>
    private async Task<(FileIdentity Exe, bool ReExecd)> Init(string runc, SealedExecutable.Lease? lease)
    {
        var sealedRun = lease is not null;
        var id = $"garden-test-sealed-{Environment.ProcessId}-{Interlocked.Increment(ref _containers)}";
        var bundle = Path.Combine(_dir, id);
        Directory.CreateDirectory(bundle);
        Assert.True((await Command.RunAsync(runc, ["spec", "--bundle", bundle])).Succeeded);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")))!;
        config["process"]!["terminal"] = false;
        config["process"]!["args"] = new JsonArray("/bin/sh", "-c", "exit 0");
        config["root"] = new JsonObject { ["path"] = TestPaths.DefaultRootfs, ["readonly"] = true };
        config["linux"]!["cgroupsPath"] = "/" + id;
        File.WriteAllText(Path.Combine(bundle, "config.json"), config.ToJsonString());
        try
        {
            using (lease)
            {
                var r = await Command.RunAsync(lease?.ExecPath ?? runc, runc, ["create", "--bundle", bundle, id],
                    new CommandOutput("/dev/null", Path.Combine(bundle, "err")));
                Assert.True(r.Succeeded, r.Stderr);
            }
            var pid = int.Parse(JsonNode.Parse((await Command.RunAsync(runc, ["state", id])).Stdout)!["pid"]!.ToString());
            if (sealedRun)
                using (var exe = File.OpenHandle($"/proc/{pid}/exe", FileMode.Open, FileAccess.Read))
                    Assert.Equal(RuncSeals, Sys.Seals(exe));
            // the environment the init was exec'd with (what it got at its last execve, whatever it changed since)
            var environ = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
            return (Sys.Identity($"/proc/{pid}/exe"), environ.Contains("_LIBCONTAINER_CLONED_BINARY=1"));
        }
        finally
        {
            await Command.RunAsync(runc, ["kill", id, "KILL"]);
            for (var i = 0; i < 100 && !(await Command.RunAsync(runc, ["delete", id])).Succeeded; i++) await Task.Delay(20);
        }
    }
}
