using Garden.Linux.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary><see cref="SharedUidLimits"/> on files standing for /proc/sys/fs/pipe-user-pages-soft and
/// fs/epoll/max_user_watches (the real ones are lifted by gardend's start: SharedUidLimitsTests in the end-to-end tests;
/// the attacks they stop: Escape/SharedQuotaEscapeTests).</summary>
public sealed class SharedUidLimitsTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("uidlimits");

    private string Pipes => Path.Combine(_dir, "pipe-user-pages-soft");
    private string Watches => Path.Combine(_dir, "max_user_watches");

    private SharedUidLimits Limits => new(Pipes, Watches);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Both_limits_are_lifted_and_each_change_is_said()
    {
        File.WriteAllText(Pipes, "16384\n");
        File.WriteAllText(Watches, "5491511\n");
        Assert.Equal(["fs.pipe-user-pages-soft 16384 -> 0 (none)", "fs.epoll.max_user_watches 5491511 -> 9223372036854775807 (none)"], Limits.Lift());
        Assert.Equal("0", File.ReadAllText(Pipes).Trim());
        Assert.Equal("9223372036854775807", File.ReadAllText(Watches).Trim());
    }

    [Fact]
    public void No_limit_is_left_as_it_is()
    {
        File.WriteAllText(Pipes, "0\n");
        File.WriteAllText(Watches, "9223372036854775807\n");
        Assert.Empty(Limits.Lift());
        Assert.Equal("0\n", File.ReadAllText(Pipes));
        Assert.Equal("9223372036854775807\n", File.ReadAllText(Watches));
    }

    [Fact]
    public void A_value_that_is_not_a_number_is_an_error_naming_the_file()
    {
        File.WriteAllText(Pipes, "0\n");
        File.WriteAllText(Watches, "lots\n");
        var e = Assert.Throws<InvalidDataException>(() => Limits.Lift());
        Assert.Contains(Watches, e.Message);
        Assert.Contains("lots", e.Message);
    }
}
