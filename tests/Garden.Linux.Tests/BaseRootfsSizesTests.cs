using Garden.Linux.Rootfs;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The size of a base rootfs, which Garden's total disk use counts as the container's image.</summary>
public sealed class BaseRootfsSizesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("garden-test-basesize-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Counts_the_bytes_of_regular_files_in_every_directory_not_what_symlinks_point_at_and_walks_once()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "bin"));
        Directory.CreateDirectory(Path.Combine(_dir, "etc/deep/er"));
        File.WriteAllBytes(Path.Combine(_dir, "bin/busybox"), new byte[300_000]);
        File.WriteAllBytes(Path.Combine(_dir, "etc/deep/er/passwd"), new byte[1234]);
        File.CreateSymbolicLink(Path.Combine(_dir, "bin/sh"), "busybox");
        File.CreateSymbolicLink(Path.Combine(_dir, "host"), "/usr");   // a link out of the rootfs is not followed
        Directory.CreateSymbolicLink(Path.Combine(_dir, "loop"), _dir);

        var sizes = new BaseRootfsSizes();
        Assert.Equal(301_234UL, await sizes.SizeAsync(_dir));
        File.WriteAllBytes(Path.Combine(_dir, "later"), new byte[5000]);
        Assert.Equal(301_234UL, await sizes.SizeAsync(_dir + "/"));   // cached per rootfs (same full path)
        Assert.Equal(306_234UL, await new BaseRootfsSizes().SizeAsync(_dir));
    }

    [Fact]
    public async Task A_missing_rootfs_fails_naming_it_and_is_not_cached()
    {
        var missing = Path.Combine(_dir, "nope");
        var sizes = new BaseRootfsSizes();
        var e = await Assert.ThrowsAsync<DirectoryNotFoundException>(() => sizes.SizeAsync(missing));
        Assert.Contains(missing, e.Message);
        Directory.CreateDirectory(missing);
        File.WriteAllBytes(Path.Combine(missing, "f"), new byte[7]);
        Assert.Equal(7UL, await sizes.SizeAsync(missing));
    }
}
