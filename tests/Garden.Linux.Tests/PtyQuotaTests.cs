using Garden.Linux.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary><see cref="PtyQuota"/> on files standing for /proc/sys/kernel/pty (the real one is raised by gardend's start;
/// the attack it stops: Escape/SharedQuotaEscapeTests).</summary>
public sealed class PtyQuotaTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("pty");

    public PtyQuotaTests() => File.WriteAllText(Path.Combine(_dir, "reserve"), "1024\n");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Max => Path.Combine(_dir, "max");

    [Fact]
    public void The_limit_is_raised_to_every_containers_share_beside_the_hosts_reserve()
    {
        File.WriteAllText(Max, "4096\n");
        Assert.Equal("kernel.pty.max 4096 -> 263168", new PtyQuota(_dir).EnsureFor(256)); // 1024 + 256 x 1024
        Assert.Equal("263168", File.ReadAllText(Max).Trim());
    }

    [Fact]
    public void A_higher_limit_is_never_lowered_and_the_kernels_most_is_not_passed()
    {
        File.WriteAllText(Max, "500000\n");
        Assert.Null(new PtyQuota(_dir).EnsureFor(100));
        Assert.Equal("500000", File.ReadAllText(Max).Trim());
        Assert.Equal("kernel.pty.max 500000 -> 1048576", new PtyQuota(_dir).EnsureFor(5000));
    }

    [Fact]
    public void A_value_that_is_not_a_number_is_an_error_naming_the_file()
    {
        File.WriteAllText(Max, "many\n");
        var e = Assert.Throws<InvalidDataException>(() => new PtyQuota(_dir).EnsureFor(10));
        Assert.Contains(Max, e.Message);
    }
}
