using Garden.Linux.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary><see cref="PipeQuota"/> on a file standing for /proc/sys/fs/pipe-user-pages-soft (the real one is lifted by
/// gardend's start: PipeQuotaTests in the end-to-end tests).</summary>
public sealed class PipeQuotaTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("pipes");

    private string File_ => Path.Combine(_dir, "pipe-user-pages-soft");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_limit_is_lifted_and_the_change_is_said()
    {
        File.WriteAllText(File_, "16384\n");
        Assert.Equal("fs.pipe-user-pages-soft 16384 -> 0 (none)", new PipeQuota(File_).Lift());
        Assert.Equal("0", File.ReadAllText(File_).Trim());
    }

    [Fact]
    public void No_limit_is_left_as_it_is()
    {
        File.WriteAllText(File_, "0\n");
        Assert.Null(new PipeQuota(File_).Lift());
        Assert.Equal("0\n", File.ReadAllText(File_));
    }

    [Fact]
    public void A_value_that_is_not_a_number_is_an_error_naming_the_file()
    {
        File.WriteAllText(File_, "lots\n");
        var e = Assert.Throws<InvalidDataException>(() => new PipeQuota(File_).Lift());
        Assert.Contains(File_, e.Message);
        Assert.Contains("lots", e.Message);
    }
}
