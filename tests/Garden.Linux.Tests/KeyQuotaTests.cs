using Garden.Linux.Host;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary><see cref="KeyQuota"/> on a directory laid out as /proc/sys/kernel/keys (the real one is raised by gardend's
/// start: KeyQuotaTests in the end-to-end tests).</summary>
public sealed class KeyQuotaTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("keys");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void Set(string maxkeys, string maxbytes)
    {
        File.WriteAllText(Path.Combine(_dir, "maxkeys"), maxkeys + "\n");
        File.WriteAllText(Path.Combine(_dir, "maxbytes"), maxbytes + "\n");
    }

    private string Read(string name) => File.ReadAllText(Path.Combine(_dir, name)).Trim();

    [Fact]
    public void The_kernel_defaults_are_raised_to_a_keyring_per_container_and_the_change_is_said()
    {
        Set("200", "20000");
        var changed = new KeyQuota(_dir).EnsureFor(256);
        Assert.Equal("456", Read("maxkeys"));
        Assert.Equal((456 * KeyQuota.BytesPerKeyring).ToString(), Read("maxbytes"));
        Assert.Equal(["kernel.keys.maxkeys 200 -> 456", $"kernel.keys.maxbytes 20000 -> {456 * KeyQuota.BytesPerKeyring}"], changed);
    }

    [Fact]
    public void A_higher_quota_is_never_lowered()
    {
        Set("1000000", "25000000");
        Assert.Empty(new KeyQuota(_dir).EnsureFor(256));
        Assert.Equal("1000000", Read("maxkeys"));
        Assert.Equal("25000000", Read("maxbytes"));
    }

    [Fact]
    public void Only_the_value_that_is_too_low_changes()
    {
        Set("5000", "100");
        Assert.Equal([$"kernel.keys.maxbytes 100 -> {456 * KeyQuota.BytesPerKeyring}"], new KeyQuota(_dir).EnsureFor(256));
        Assert.Equal("5000", Read("maxkeys"));
    }

    [Fact]
    public void A_value_that_is_not_a_number_is_an_error_naming_the_file()
    {
        Set("lots", "20000");
        var e = Assert.Throws<InvalidDataException>(() => new KeyQuota(_dir).EnsureFor(10));
        Assert.Contains(Path.Combine(_dir, "maxkeys"), e.Message);
        Assert.Contains("lots", e.Message);
    }
}
