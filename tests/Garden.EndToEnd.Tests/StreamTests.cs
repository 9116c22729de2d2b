using System.Diagnostics;
using System.Formats.Tar;
using Garden.Testing;
using Xunit;

namespace Garden.EndToEnd.Tests;

/// <summary>StreamIn/StreamOut through the CLI against a real gardend: round trips keep modes, owners, symlinks; archives
/// that try to leave the destination (`..`, absolute names, symlinks planted in the container or in the archive, a symlink
/// swapped in mid-extraction) write nothing outside it and nothing on the host; bad input gets a clear error.</summary>
public sealed class StreamTests(DaemonFixture fx) : IClassFixture<DaemonFixture>
{
    private Gardend D => fx.Daemon;

    private static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    private async Task<string> Create(string prefix, params string[] flags)
    {
        var h = Unique(prefix);
        var r = await D.CliAsync(["create", "--handle", h, .. flags]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return h;
    }

    private async Task<string> Sh(string handle, string script)
    {
        var r = await D.CliAsync("run", handle, "--", "sh", "-c", script);
        Assert.True(r.ExitCode == 0, $"{script}: {r}");
        return r.Stdout;
    }

    /// <summary>garden ARGS with stdin from input and stdout into output (binary, unlike CliAsync).</summary>
    private async Task<CliResult> Binary(string[] args, Stream? input = null, Stream? output = null)
    {
        using var p = D.StartCli(args);
        var stdout = output is null ? p.StandardOutput.ReadToEndAsync() : p.StandardOutput.BaseStream.CopyToAsync(output).ContinueWith(_ => "");
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            if (input is not null) await input.CopyToAsync(p.StandardInput.BaseStream);
        }
        catch (IOException)
        {
            // garden stopped reading: the daemon already refused the archive
        }
        try { p.StandardInput.Close(); } catch (IOException) { }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await p.WaitForExitAsync(cts.Token);
        return new CliResult(p.ExitCode, await stdout, await stderr);
    }

    private Task<CliResult> StreamIn(string handle, string dest, Stream tar, params string[] flags) =>
        Binary(["stream-in", handle, dest, .. flags], tar);

    private static MemoryStream Tar(Action<TarWriter> write)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true)) write(w);
        ms.Position = 0;
        return ms;
    }

    private static PaxTarEntry File(string name, string content, int mode = 0b110_100_100)
    {
        var e = new PaxTarEntry(TarEntryType.RegularFile, name) { Mode = (UnixFileMode)mode };
        e.DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content));
        return e;
    }

    private static PaxTarEntry Link(string name, string target) => new(TarEntryType.SymbolicLink, name) { LinkName = target };

    private static List<TarEntry> Entries(Stream tar)
    {
        tar.Position = 0;
        var list = new List<TarEntry>();
        using var r = new TarReader(tar, leaveOpen: true);
        while (r.GetNextEntry(copyData: true) is { } e) list.Add(e);
        return list;
    }

    private static string Text(TarEntry e) => new StreamReader(e.DataStream!).ReadToEnd();

    /// <summary>garden sends stdin's archive in 256 KiB messages from one buffer it refills: an archive of many pieces,
    /// every byte random, comes back byte for byte (a piece sent after its buffer was refilled would change files).</summary>
    [InstallFact]
    public async Task An_archive_of_many_pieces_through_garden_arrives_byte_for_byte()
    {
        var h = await Create("pieces");
        try
        {
            var contents = new[] { 3 << 20, 256 * 1024 + 7, 1_000_001 }.Select(n => { var b = new byte[n]; Random.Shared.NextBytes(b); return b; }).ToArray();
            var tar = Tar(w =>
            {
                for (int i = 0; i < contents.Length; i++)
                    w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"big/f{i}") { DataStream = new MemoryStream(contents[i]) });
            });
            var inR = await StreamIn(h, "/dst", tar);
            Assert.True(inR.ExitCode == 0, inR.ToString());

            var back = new MemoryStream();
            var outR = await Binary(["stream-out", h, "/dst/big"], output: back);
            Assert.True(outR.ExitCode == 0, outR.ToString());
            var byName = Entries(back).Where(e => e.EntryType == TarEntryType.RegularFile).ToDictionary(e => e.Name);
            for (int i = 0; i < contents.Length; i++)
            {
                using var data = new MemoryStream();
                byName[$"big/f{i}"].DataStream!.CopyTo(data);
                Assert.True(data.ToArray().AsSpan().SequenceEqual(contents[i]), $"big/f{i} ({contents[i].Length} bytes) did not come back whole");
            }
        }
        finally
        {
            await D.CliAsync("destroy", h);
        }
    }

    [InstallFact]
    public async Task A_tree_round_trips_with_modes_owners_symlinks_and_a_materialized_hardlink()
    {
        var h = await Create("stream");
        try
        {
            await Sh(h, "mkdir -p /src/tree/sub && cd /src/tree && echo hello > a && chmod 640 a && chown 1000:1000 a && " +
                        "ln a hard && ln -s a rel && ln -s /etc/passwd abs && echo x > sub/x && chmod 750 sub && chmod 4755 sub/x && " +
                        "touch -d '2020-01-02 03:04:05' sub/x");

            var tar = new MemoryStream();
            var outR = await Binary(["stream-out", h, "/src/tree"], output: tar);
            Assert.True(outR.ExitCode == 0, outR.ToString());
            var byName = Entries(tar).ToDictionary(e => e.Name);
            Assert.Equal(["tree/", "tree/a", "tree/abs", "tree/hard", "tree/rel", "tree/sub/", "tree/sub/x"], byName.Keys.Order());
            Assert.Equal(1000, byName["tree/a"].Uid);
            Assert.Equal(1000, byName["tree/a"].Gid);
            Assert.Equal((UnixFileMode)0b110_100_000, byName["tree/a"].Mode);
            Assert.Equal(TarEntryType.RegularFile, byName["tree/hard"].EntryType);
            Assert.Equal("hello\n", Text(byName["tree/hard"]));
            Assert.Equal(TarEntryType.SymbolicLink, byName["tree/rel"].EntryType);
            Assert.Equal("a", byName["tree/rel"].LinkName);
            Assert.Equal("/etc/passwd", byName["tree/abs"].LinkName);
            Assert.Equal((UnixFileMode)0b100_111_101_101, byName["tree/sub/x"].Mode);
            Assert.Equal(new DateTimeOffset(2020, 1, 2, 3, 4, 5, TimeSpan.Zero), byName["tree/sub/x"].ModificationTime);

            // `dir/` is only the contents (Warden's rule)
            var contents = new MemoryStream();
            Assert.Equal(0, (await Binary(["stream-out", h, "/src/tree/"], output: contents)).ExitCode);
            Assert.Equal("./", Entries(contents)[0].Name);   // as `tar -C tree .` (and Garden) writes it
            Assert.Contains("./sub/x", Entries(contents).Select(e => e.Name));
            Assert.DoesNotContain(Entries(contents), e => e.Name.StartsWith("tree"));

            tar.Position = 0;
            var inR = await StreamIn(h, "/dst/deep", tar);
            Assert.True(inR.ExitCode == 0, inR.ToString());
            var listing = await Sh(h, "cd /dst/deep/tree && for f in a hard sub sub/x; do stat -c '%n %a %u %g %h' $f; done; " +
                                      "readlink rel; readlink abs; stat -c %Y sub/x; cat hard");
            Assert.Equal("a 640 1000 1000 1\nhard 640 1000 1000 1\nsub 750 0 0 2\nsub/x 4755 0 0 1\na\n/etc/passwd\n" +
                         $"{new DateTimeOffset(2020, 1, 2, 3, 4, 5, TimeSpan.Zero).ToUnixTimeSeconds()}\nhello\n", listing);

            // as a non-root user the files are that user's
            tar.Position = 0;
            await Sh(h, "mkdir -p /home/u && chown 1000:1000 /home/u");
            var asUser = await StreamIn(h, "/home/u/in", tar, "--user", "1000:1000");
            Assert.True(asUser.ExitCode == 0, asUser.ToString());
            Assert.Equal("1000 1000\n", await Sh(h, "stat -c '%u %g' /home/u/in/tree/sub/x"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Dot_dot_and_absolute_entries_are_refused_naming_the_entry()
    {
        var h = await Create("escape");
        var mark = Unique("gardenesc");
        try
        {
            var dotdot = await StreamIn(h, "/dst", Tar(w => w.WriteEntry(File($"../../../../tmp/{mark}", "x"))));
            Assert.Equal(1, dotdot.ExitCode);
            Assert.Contains($"../../../../tmp/{mark}", dotdot.Stderr);
            Assert.Contains("'..'", dotdot.Stderr);

            var abs = await StreamIn(h, "/dst", Tar(w => w.WriteEntry(File($"/tmp/{mark}", "x"))));
            Assert.Equal(1, abs.ExitCode);
            Assert.Contains($"/tmp/{mark}", abs.Stderr);
            Assert.Contains("absolute", abs.Stderr);

            Assert.False(System.IO.File.Exists($"/tmp/{mark}"), "written on the host");
            Assert.Equal("no\n", await Sh(h, $"test -e /tmp/{mark} && echo yes || echo no"));
            Assert.Equal("ok\n", (await D.CliAsync("run", h, "--", "echo", "ok")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallTheory]
    [InlineData("/")]
    [InlineData("/..")]
    [InlineData("/tmp")]
    public async Task A_symlink_planted_in_the_container_is_never_followed(string target)
    {
        var h = await Create("planted");
        var mark = Unique("gardenesc");
        try
        {
            // the host's /tmp is an absolute host path: were the link followed outside the container, it would land there
            await Sh(h, $"mkdir -p /dst && ln -s {target} /dst/link");
            var through = target == "/tmp" ? $"link/{mark}" : $"link/tmp/{mark}";
            var r = await StreamIn(h, "/dst", Tar(w => w.WriteEntry(File(through, "x"))));
            Assert.Equal(1, r.ExitCode);
            Assert.Contains(through, r.Stderr);
            Assert.Contains("symlink", r.Stderr);
            Assert.False(System.IO.File.Exists($"/tmp/{mark}"), "written on the host");
            Assert.Equal("no\n", await Sh(h, $"test -e /tmp/{mark} && echo yes || echo no"));

            // the last component: an entry named like the planted link replaces the link, never writes through it
            var replace = await StreamIn(h, "/dst", Tar(w => w.WriteEntry(File("link", "replaced"))));
            Assert.True(replace.ExitCode == 0, replace.ToString());
            Assert.Equal("replaced", await Sh(h, "cat /dst/link"));
            Assert.Equal("no\n", await Sh(h, "test -L /dst/link && echo yes || echo no"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task A_symlink_from_the_archive_itself_is_not_followed_by_later_entries()
    {
        var h = await Create("archlink");
        var mark = Unique("gardenesc");
        try
        {
            var r = await StreamIn(h, "/dst", Tar(w =>
            {
                w.WriteEntry(Link("up", "/tmp"));
                w.WriteEntry(File($"up/{mark}", "x"));
            }));
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"up/{mark}", r.Stderr);
            Assert.False(System.IO.File.Exists($"/tmp/{mark}"));
            Assert.Equal("no\n", await Sh(h, $"test -e /tmp/{mark} && echo yes || echo no"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task A_directory_swapped_for_a_symlink_mid_extraction_does_not_redirect_writes()
    {
        var h = await Create("swap");
        var mark = Unique("gardenesc");
        try
        {
            // a racer in the container waits for the big file (the archive is then past d/) and swaps d for a link to /tmp;
            // the big file streams for long enough that the swap lands before d/MARK is extracted
            var racer = D.StartCli("run", h, "--", "sh", "-c",
                "mkdir -p /dst; while [ ! -e /dst/big ]; do :; done; rm -rf /dst/d; ln -s /tmp /dst/d; echo swapped");
            await Task.Delay(300);
            var big = new byte[64 << 20];
            var r = await StreamIn(h, "/dst", Tar(w =>
            {
                w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "d/") { Mode = (UnixFileMode)0b111_101_101 });
                w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "big") { DataStream = new MemoryStream(big) });
                w.WriteEntry(File($"d/{mark}", "x"));
            }));
            Assert.True(racer.WaitForExit(30_000), "the racer never saw /dst/big");
            Assert.Equal("swapped", racer.StandardOutput.ReadToEnd().Trim());
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("symlink", r.Stderr);
            Assert.False(System.IO.File.Exists($"/tmp/{mark}"));
            Assert.Equal("no\n", await Sh(h, $"test -e /tmp/{mark} && echo yes || echo no"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task Bad_input_gets_clear_errors_and_the_daemon_carries_on()
    {
        var h = await Create("badin");
        try
        {
            var notTar = await StreamIn(h, "/dst", new MemoryStream(System.Text.Encoding.UTF8.GetBytes(new string('x', 5000))));
            Assert.Equal(1, notTar.ExitCode);
            Assert.Contains("not a tar archive", notTar.Stderr);

            var empty = await StreamIn(h, "/dst", new MemoryStream());
            Assert.Equal(1, empty.ExitCode);
            Assert.Contains("not a tar", empty.Stderr);

            var noUser = await StreamIn(h, "/dst", Tar(w => w.WriteEntry(File("f", "x"))), "--user", "nosuchuser");
            Assert.Equal(1, noUser.ExitCode);
            Assert.Contains("no such user", noUser.Stderr);
            Assert.Contains("nosuchuser", noUser.Stderr);

            var missing = await Binary(["stream-out", h, "/no/such/path"], output: new MemoryStream());
            Assert.Equal(1, missing.ExitCode);
            Assert.Contains("/no/such/path does not exist", missing.Stderr);

            var climbing = await Binary(["stream-out", h, "/../../etc"], output: new MemoryStream());
            Assert.Equal(1, climbing.ExitCode);
            Assert.Contains("climbs above", climbing.Stderr);

            await Sh(h, "touch /file");
            var notDir = await StreamIn(h, "/file", Tar(w => w.WriteEntry(File("f", "x"))));
            Assert.Equal(1, notDir.ExitCode);
            Assert.Contains("/file is not a directory", notDir.Stderr);

            var unknown = await StreamIn("no-such-handle", "/dst", Tar(w => w.WriteEntry(File("f", "x"))));
            Assert.Equal(1, unknown.ExitCode);
            Assert.Contains("no-such-handle", unknown.Stderr);

            // a user may not write where it has no right to, and says so
            var denied = await StreamIn(h, "/root/x", Tar(w => w.WriteEntry(File("f", "x"))), "--user", "1000");
            Assert.Equal(1, denied.ExitCode);
            Assert.Contains("/root/x", denied.Stderr);

            var ok = await StreamIn(h, "/dst", Tar(w => w.WriteEntry(File("f", "fine"))));
            Assert.True(ok.ExitCode == 0, ok.ToString());
            Assert.Equal("fine", await Sh(h, "cat /dst/f"));
        }
        finally { await D.CliAsync("destroy", h); }
    }

    [InstallFact]
    public async Task An_archive_larger_than_the_disk_limit_fails_clearly_and_leaves_no_partial_file()
    {
        var h = await Create("sdisk", "--disk", "32M");
        try
        {
            var tarPath = Path.Combine(Path.GetTempPath(), Unique("bigtar") + ".tar");
            try
            {
                using (var fs = System.IO.File.Create(tarPath))
                using (var w = new TarWriter(fs, TarEntryFormat.Pax))
                {
                    w.WriteEntry(File("small", "kept"));
                    w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, "huge") { DataStream = new MemoryStream(new byte[64 << 20]) });
                }
                using var input = System.IO.File.OpenRead(tarPath);
                var r = await StreamIn(h, "/dst", input);
                Assert.Equal(1, r.ExitCode);
                Assert.Contains("disk is full", r.Stderr);
                Assert.Contains("huge", r.Stderr);
            }
            finally { System.IO.File.Delete(tarPath); }
            Assert.Equal("kept|no\n", await Sh(h, "printf '%s|' \"$(cat /dst/small)\"; test -e /dst/huge && echo yes || echo no"));
            Assert.Equal("ok\n", (await D.CliAsync("run", h, "--", "echo", "ok")).Stdout);
        }
        finally { await D.CliAsync("destroy", h); }
    }

    /// <summary>The tools stream: an archive three times the container's memory limit goes in and out whole.</summary>
    [InstallFact]
    public async Task An_archive_larger_than_the_memory_limit_streams_in_and_out()
    {
        // 96 MiB through a 64 MiB container: larger than the limit, with room for the page cache of what is written
        // (a 32 MiB limit left dirty pages too little room on a loaded host and the kernel's OOM killer struck).
        var h = await Create("smem", "--memory", "64M");
        var tarPath = Path.Combine(Path.GetTempPath(), Unique("memtar") + ".tar");
        try
        {
            using (var fs = System.IO.File.Create(tarPath))
            using (var w = new TarWriter(fs, TarEntryFormat.Pax))
            {
                var data = new byte[32 << 20];
                Random.Shared.NextBytes(data);
                for (var i = 0; i < 3; i++)
                    w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"big/{i}") { DataStream = new MemoryStream(data) });
            }
            using (var input = System.IO.File.OpenRead(tarPath))
            {
                var r = await StreamIn(h, "/data", input);
                if (r.ExitCode != 0) Assert.Fail($"{r}\n{await D.CliAsync("info", h)}"); // "out of memory" in the events: the agent was killed
            }
            Assert.Equal("100663296\n", await Sh(h, "cat /data/big/* | wc -c"));
            var counter = new CountingStream();
            var o = await Binary(["stream-out", h, "/data/big"], output: counter);
            Assert.True(o.ExitCode == 0, o.ToString());
            Assert.InRange(counter.Count, 96L << 20, (96L << 20) + (64 << 10));
        }
        finally
        {
            System.IO.File.Delete(tarPath);
            await D.CliAsync("destroy", h);
        }
    }

    private sealed class CountingStream : Stream
    {
        public long Count { get; private set; }
        public override void Write(byte[] buffer, int offset, int count) => Count += count;
        public override void Write(ReadOnlySpan<byte> buffer) => Count += buffer.Length;
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
        {
            Count += buffer.Length;
            return ValueTask.CompletedTask;
        }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Count;
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
