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

/// <summary><see cref="HostFloors"/> and <see cref="DaemonOomScore"/> on files standing for /proc (the real ones: gardend's
/// start, Escape/SharedQuotaEscapeTests).</summary>
public sealed class HostFloorsTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("floors");

    public HostFloorsTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "fs"));
        Directory.CreateDirectory(Path.Combine(_dir, "kernel"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void The_file_and_pid_tables_are_raised_to_the_kernels_most_and_each_change_is_said_never_lowered()
    {
        File.WriteAllText(Path.Combine(_dir, "fs/file-max"), "2466177\n");
        File.WriteAllText(Path.Combine(_dir, "kernel/pid_max"), "32768\n");
        Assert.Equal(["fs.file-max 2466177 -> 9223372036854775807", "kernel.pid_max 32768 -> 4194304"], new HostFloors(_dir).Raise(256));
        Assert.Empty(new HostFloors(_dir).Raise(256));
        // the connection tracking table, once the kernel has one: every container's share and the host's
        Directory.CreateDirectory(Path.Combine(_dir, "net/netfilter"));
        File.WriteAllText(Path.Combine(_dir, "net/netfilter/nf_conntrack_max"), "262144\n");
        Assert.Equal(["net.netfilter.nf_conntrack_max 262144 -> 1114112"], new HostFloors(_dir).Raise(256)); // 65536 + 256 x 4096
        Assert.Equal("4194304", File.ReadAllText(Path.Combine(_dir, "kernel/pid_max")).Trim());
    }

    [Fact]
    public void The_daemons_oom_score_is_lowered_never_raised()
    {
        var file = Path.Combine(_dir, "oom_score_adj");
        File.WriteAllText(file, "0\n");
        Assert.Equal("oom_score_adj 0 -> -900", DaemonOomScore.Protect(file));
        File.WriteAllText(file, "-1000\n");
        Assert.Null(DaemonOomScore.Protect(file));
        Assert.Equal("-1000", File.ReadAllText(file).Trim());
    }
}
