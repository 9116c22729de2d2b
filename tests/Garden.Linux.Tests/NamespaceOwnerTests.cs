using Garden.Linux.Interop;
using Garden.Linux.UserNamespaces;
using Garden.Testing;
using Tmds.Linux;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>Each container's user namespace is owned by a host uid of its own (<see cref="NamespaceOwners"/>), so the
/// kernel's per-user quotas that count up to the owner are the container's alone (the attack: Escape/SharedQuotaEscapeTests).</summary>
public sealed class NamespaceOwnerTests
{
    [Fact]
    public void Owners_come_in_order_from_the_block_skipping_those_live_namespaces_have()
    {
        var live = new[] { 0u, NamespaceOwners.First + 1, NamespaceOwners.First + 2, 1000u };
        var owners = new NamespaceOwners(() => live);
        Assert.Equal(NamespaceOwners.First, owners.Next());
        Assert.Equal(NamespaceOwners.First + 3, owners.Next());
        Assert.Equal(NamespaceOwners.First + 4, owners.Next());
    }

    [Fact]
    public void When_the_block_comes_round_the_live_owners_are_read_again_and_none_is_handed_out_twice_while_live()
    {
        var reads = 0;
        // every owner but the last two is in use at the first read; at the second, only the first one
        var owners = new NamespaceOwners(() => ++reads == 1
            ? Enumerable.Range(0, (int)NamespaceOwners.Count - 2).Select(i => NamespaceOwners.First + (uint)i)
            : [NamespaceOwners.First]);
        Assert.Equal(NamespaceOwners.First + NamespaceOwners.Count - 2, owners.Next());
        Assert.Equal(NamespaceOwners.First + NamespaceOwners.Count - 1, owners.Next());
        Assert.Equal(NamespaceOwners.First + 1, owners.Next());
        Assert.Equal(2, reads);
    }

    [Fact]
    public void With_every_owner_in_use_a_create_is_refused_saying_so()
    {
        var owners = new NamespaceOwners(() => Enumerable.Range(0, (int)NamespaceOwners.Count).Select(i => NamespaceOwners.First + (uint)i));
        var e = Assert.Throws<UserNamespaceException>(() => owners.Next());
        Assert.Contains("namespace owner uids", e.Message);
    }

    [Fact]
    public void Host_users_with_a_uid_in_the_block_are_named_and_others_not()
    {
        var dir = TestPaths.NewTempDir("passwd");
        try
        {
            var passwd = Path.Combine(dir, "passwd");
            File.WriteAllLines(passwd, ["root:x:0:0:root:/root:/bin/sh", $"squatter:x:{NamespaceOwners.First + 7}:100::/:/bin/sh",
                "nobody:x:65534:65534::/:/bin/false", $"top:x:{NamespaceOwners.First + NamespaceOwners.Count}:1::/:/bin/sh", "garbage line"]);
            Assert.Equal([$"squatter ({NamespaceOwners.First + 7})"], NamespaceOwners.HostUsersInBlock(passwd));
            Assert.Empty(NamespaceOwners.HostUsersInBlock(Path.Combine(dir, "missing")));
            Assert.Empty(NamespaceOwners.HostUsersInBlock()); // this host has none
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [InstallFact] // the holder is the agent binary
    public async Task The_holder_makes_the_namespace_owned_by_the_uid_it_was_given_and_the_live_owners_show_it()
    {
        var owners = new NamespaceOwners();
        await using var userns = await new HolderUserNamespaces(TestPaths.AgentBinary, owners).CreateAsync("c", IdMapping.Garden, default);
        Assert.True(NamespaceOwners.InBlock(userns.Owner), $"{userns.Owner}");
        using (var fd = Sys.Open(userns.UserNamespacePath, LibC.O_RDONLY))
            Assert.Equal(userns.Owner, Sys.UserNamespaceOwner(fd, userns.UserNamespacePath));
        Assert.Contains(userns.Owner, NamespaceOwners.LiveOwners());
        // the mapping is gardend's to write, as before: container root is 4294967294
        Assert.Equal("0 4294967294 1", string.Join(' ', File.ReadLines($"/proc/{userns.Pid}/uid_map").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)));
        // and the next namespace gets another owner
        await using var second = await new HolderUserNamespaces(TestPaths.AgentBinary, owners).CreateAsync("d", IdMapping.Garden, default);
        Assert.NotEqual(userns.Owner, second.Owner);
    }

    [InstallFact]
    public async Task A_holder_given_root_or_garbage_as_owner_refuses_naming_it()
    {
        foreach (var bad in new[] { "0", "-5", "4294967295", "12abc", "" })
        {
            var r = await Garden.Linux.Process.Command.RunAsync(TestPaths.AgentBinary, [HolderUserNamespaces.HolderCommand, bad]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("the owner is not a host uid other than root", r.Stderr);
        }
    }
}
