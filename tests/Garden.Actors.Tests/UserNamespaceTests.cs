using System.Collections.Immutable;
using Akka.Actor;
using Akka.Persistence;
using Garden.Actors.Container;
using Garden.Actors.Host;
using Garden.Linux.Cgroups;
using Garden.Linux.Rootfs;
using Garden.Linux.UserNamespaces;
using Garden.Protocol.Journal;
using Garden.Testing;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>User namespaces at the actor level (fakes for the holder, rootfs, cgroups, network): what a Create decides
/// and hands to each effect, the per-container pool across create, destroy and a restart, and an earlier build's
/// container (journaled without a user namespace) that must keep running as it was made.</summary>
public sealed class UserNamespaceTests() : ActorTest("userns", "network.pool = \"10.9.0.0/24\"", startHost: false)
{
    private string _extra = "";

    private void PerContainer(int ranges) =>
        _extra = $"user-namespace {{ mapping = per-container, per-container {{ first-host-id = {0x7e00_0000u}, ranges = {ranges} }} }}";

    private void Start() => StartHost(_extra);

    private void Restart() => Restart(_extra);

    private static HostProtocol.CreateContainer Create(string handle, bool privileged = false) =>
        new(new ContainerSpec(handle, "", [], ImmutableDictionary<string, string>.Empty, privileged));

    private ContainerProtocol.ContainerInfo Info(string handle) => Ask<ContainerProtocol.ContainerInfo>(new ContainerProtocol.GetInfo(handle));

    [Fact]
    public void A_create_gets_gardens_mapping_and_every_effect_is_given_its_user_namespace()
    {
        Start();
        Ask<HostProtocol.ContainerCreated>(Create("u"));
        Assert.Equal(IdMapping.Garden, UserNamespaces.Made["u"]);
        Assert.Equal(IdMapping.Garden, Info("u").UserNamespace);
        Assert.False(Info("u").EarlierHostRoot);
        // the network's namespace is the holder's, the rootfs is idmapped for container root, the work cgroup is its,
        // and runc joins the same user namespace
        var bundle = Runtime.Bundles["u"];
        Assert.NotNull(bundle.UserNamespace);
        Assert.Equal(IdMapping.Garden, bundle.UserNamespace!.Mapping);
        var pid = int.Parse(bundle.UserNamespace.Path.Split('/')[2]);
        Assert.Equal(pid, Network.NetnsOf["u"]);
        Assert.Equal(new UserNamespaceRoot(bundle.UserNamespace.Path, 4294967294, 4294967294), Rootfs.Owners["u"]);
        Assert.Equal(new CgroupOwner(4294967294, 4294967294), Cgroups.Delegated["u"]);
        // the holder is let go once runc has joined
        Assert.Equal(0, UserNamespaces.Held);
        // the mount point is in the mount dir, not the depot
        Assert.Equal(Path.Combine(MountDir, "u", "rootfs"), Info("u").ContainerPath);
    }

    [Fact]
    public void A_privileged_create_gets_no_user_namespace_and_nothing_is_delegated()
    {
        Start();
        Ask<HostProtocol.ContainerCreated>(Create("p", privileged: true));
        Assert.False(UserNamespaces.Made.ContainsKey("p"));
        Assert.Null(Info("p").UserNamespace);
        Assert.True(Info("p").Privileged);
        Assert.False(Info("p").EarlierHostRoot);
        Assert.Null(Runtime.Bundles["p"].UserNamespace);
        Assert.Null(Network.NetnsOf["p"]);
        Assert.Null(Rootfs.Owners["p"]);
        Assert.Null(Cgroups.Delegated["p"]);
    }

    [Fact]
    public void A_user_namespace_that_cannot_be_made_fails_the_create_and_leaves_nothing()
    {
        Start();
        UserNamespaces.FailNext = new UserNamespaceException("user namespace of x: unshare refused");
        var e = Error(Create("x"));
        Assert.Equal(ErrorKind.Internal, e.Kind);
        Assert.Contains("unshare refused", e.Message);
        Assert.Equal(0, Rootfs.MountedCount);
        Assert.Empty(Runtime.Containers);
        Assert.Empty(Network.Handles);
        AwaitAssert(() => Ask<HostProtocol.ContainerCreated>(Create("x")), TimeSpan.FromSeconds(5)); // nothing was kept
    }

    [Fact]
    public void A_failed_runtime_start_lets_the_holder_go_too()
    {
        Start();
        Runtime.FailRunWith = "boom";
        Error(Create("f"));
        Assert.Equal(0, UserNamespaces.Held);
        Assert.Equal(0, Rootfs.MountedCount);
    }

    private uint RangeOf(string handle) => Info(handle).UserNamespace!.Uids.Single().HostId;

    [Fact]
    public void Per_container_ranges_never_overlap_across_create_destroy_and_restart()
    {
        PerContainer(ranges: 2);
        Start();
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Ask<HostProtocol.ContainerCreated>(Create("b"));
        Assert.Equal(0x7e00_0000u, RangeOf("a"));
        Assert.Equal(0x7e01_0000u, RangeOf("b"));
        Assert.Equal(IdMapping.PerContainer(0x7e00_0000), UserNamespaces.Made["a"]);
        Assert.Equal(new CgroupOwner(0x7e00_0000, 0x7e00_0000), Cgroups.Delegated["a"]);
        var full = Error(Create("c"));
        Assert.Equal(ErrorKind.ResourceExhausted, full.Kind);
        Assert.Contains("user id pool is exhausted", full.Message);

        // the pool is full: c is created only once a's range is back (the host releases it just after the reply)
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("a"));
        AwaitAssert(() => Ask<HostProtocol.ContainerCreated>(Create("c")), TimeSpan.FromSeconds(5));
        Assert.Equal(0x7e00_0000u, RangeOf("c"));

        Restart();
        Assert.Equal(0x7e01_0000u, RangeOf("b"));
        Assert.Equal(0x7e00_0000u, RangeOf("c"));
        Assert.Equal(ErrorKind.ResourceExhausted, Error(Create("d")).Kind); // neither is handed out again
        Ask<HostProtocol.ContainerCreated>(Create("priv", privileged: true)); // takes no range
        Assert.Null(Info("priv").UserNamespace);

        Restart();
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("b"));
        AwaitAssert(() => Ask<HostProtocol.ContainerCreated>(Create("d")), TimeSpan.FromSeconds(5));
        Assert.Equal(0x7e01_0000u, RangeOf("d"));
        Assert.Equal(0x7e00_0000u, RangeOf("c"));
    }

    [Fact]
    public void A_destroyed_containers_range_is_not_handed_out_before_its_release_ended()
    {
        PerContainer(ranges: 1);
        Start();
        var slowRules = new TaskCompletionSource();
        Firewall.RemoveGate = slowRules.Task;
        Ask<HostProtocol.ContainerCreated>(Create("a"));
        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("a"));
        // answered, but its root and files may still be owned by its ids: no other container gets them yet
        var full = Error(Create("b"));
        Assert.Equal(ErrorKind.ResourceExhausted, full.Kind);
        Assert.Contains("user id pool is exhausted", full.Message);

        slowRules.SetResult();
        AwaitAssert(() => Ask<HostProtocol.ContainerCreated>(Create("b")), TimeSpan.FromSeconds(5));
        Assert.Equal(0x7e00_0000u, RangeOf("b"));
    }

    [Fact]
    public void The_mapping_in_force_stays_with_the_container_when_the_setting_changes()
    {
        Start();
        Ask<HostProtocol.ContainerCreated>(Create("g"));
        PerContainer(ranges: 2);
        Restart();
        Assert.Equal(IdMapping.Garden, Info("g").UserNamespace);
        Ask<HostProtocol.ContainerCreated>(Create("n"));
        Assert.Equal(0x7e00_0000u, RangeOf("n"));
    }

    /// <summary>Writes what a build before user namespaces journaled for a running container: its registration in
    /// "host", and a spec without user_namespace whose root was mounted in the depot.</summary>
    private sealed class EarlierBuild : ReceivePersistentActor
    {
        private readonly string _id;
        public override string PersistenceId => _id;

        public EarlierBuild(string id, object[] events)
        {
            _id = id;
            Recover<object>(_ => { });
            Command<string>(_ =>
            {
                var replyTo = Sender;
                PersistAll(events, _ => { });
                DeferAsync("done", _ => replyTo.Tell(id));
            });
        }
    }

    [Fact]
    public async Task A_container_of_an_earlier_build_without_a_user_namespace_reattaches_as_host_root_and_destroys_its_old_mount()
    {
        var depot = Path.Combine(StateDir, "depot", "old");
        var legacy = new RootfsPaths("/run/garden-actors/mounts/old", depot);
        var spec = new ContainerSpecRecord { Handle = "old", Rootfs = BaseRootfs, Limits = new LimitsRecord() };
        Sys.ActorOf(Props.Create(() => new EarlierBuild("host", new object[] { new ContainerRegistered { Handle = "old", Incarnation = 1 } })))
            .Tell("go", TestActor);
        ExpectMsg("host");
        Sys.ActorOf(Props.Create(() => new EarlierBuild("container-old-1", new object[]
        {
            new CreateStarted { Spec = spec },
            new CreateCompleted { RootfsMount = legacy.LegacyMountPoint, CreatedUnixMs = 1 },
        }))).Tell("go", TestActor);
        ExpectMsg("container-old-1");
        // the kernel kept running it: runc knows it, its root is mounted where that build mounted it
        await Runtime.RunAsync(new Garden.Linux.Runtime.BundleSpec("old", legacy.LegacyMountPoint, "/a", "/s", "/l", "/c", false, []), "/b", default);
        Rootfs.MountLegacy(legacy);

        Start();
        var info = Info("old");
        Assert.Equal(ContainerLifecycle.Active, info.State);
        Assert.True(info.EarlierHostRoot);
        Assert.Null(info.UserNamespace);
        Assert.False(info.Privileged);
        Assert.Equal(legacy.LegacyMountPoint, info.ContainerPath);
        Assert.Empty(UserNamespaces.Made);

        Ask<HostProtocol.ContainerDestroyed>(new HostProtocol.DestroyContainer("old"));
        AwaitAssert(() => Assert.Equal(0, Rootfs.MountedCount)); // released just after the reply
    }
}
