using System.Net.Sockets;
using Garden.Linux.Host;
using Garden.Linux.Runtime;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The depot the actors make and remove through <see cref="IDepot"/> (the actor tests use this real one on a
/// temp dir, so there is no fake to hold to a contract).</summary>
public sealed class DepotTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("depot");
    private readonly IDepot _depot = new Depot();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Create_makes_the_depot_and_the_sockets_dir_root_only_and_may_run_twice()
    {
        var (depot, sockets) = (Path.Combine(_dir, "depot", "c"), Path.Combine(_dir, "sockets"));
        _depot.Create(depot, sockets);
        _depot.Create(depot, sockets);
        const UnixFileMode rootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Assert.Equal(rootOnly, File.GetUnixFileMode(depot));
        Assert.Equal(rootOnly, File.GetUnixFileMode(sockets));
    }

    [Fact]
    public void Delete_removes_the_socket_and_the_tree_but_not_what_a_symlink_in_it_points_at_and_may_run_twice()
    {
        var (depot, sockets) = (Path.Combine(_dir, "depot", "c"), Path.Combine(_dir, "sockets"));
        _depot.Create(depot, sockets);
        var outside = Directory.CreateDirectory(Path.Combine(_dir, "outside")).FullName;
        File.WriteAllText(Path.Combine(outside, "keep"), "host data");
        Directory.CreateDirectory(Path.Combine(depot, "upper"));
        File.CreateSymbolicLink(Path.Combine(depot, "upper", "escape"), outside);
        var socket = Path.Combine(sockets, "c.sock");
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            s.Bind(new UnixDomainSocketEndPoint(socket));

        _depot.Delete(depot, socket);
        Assert.False(Directory.Exists(depot));
        Assert.False(File.Exists(socket));
        Assert.Equal("host data", File.ReadAllText(Path.Combine(outside, "keep")));
        _depot.Delete(depot, socket);
        _depot.Delete(Path.Combine(_dir, "never"), Path.Combine(_dir, "no-dir", "x.sock"));
    }

    [Fact]
    public void Startup_errors_are_the_lines_of_runcs_log_in_the_bundle_or_none()
    {
        var bundle = Directory.CreateDirectory(Path.Combine(_dir, "bundle")).FullName;
        Assert.Empty(_depot.StartupErrors(bundle));
        File.WriteAllText(Path.Combine(bundle, RuncRuntime.StartupLog), "garden-agent: cannot bind\nother\n");
        Assert.Equal(["garden-agent: cannot bind", "other"], _depot.StartupErrors(bundle));
        Assert.Empty(_depot.StartupErrors(Path.Combine(_dir, "no-bundle")));
    }
}
