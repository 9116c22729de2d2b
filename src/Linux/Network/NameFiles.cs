using Garden.Linux.Rootfs;

namespace Garden.Linux.Network;

/// <summary>A container's /etc/hosts and /etc/resolv.conf, written on the host and bind-mounted read-only into it.
/// <paramref name="DnsServers"/>: the name servers to list; empty means the host's own that a container can reach
/// (those of <paramref name="HostResolvConf"/> not on loopback). <paramref name="Owner"/>: container root's host ids, who
/// owns both files (as in Garden); null: host root.</summary>
public sealed record NameFiles(string HostsPath, string ResolvPath, string Hostname, IReadOnlyList<string> DnsServers,
    UserNamespaceRoot? Owner, string HostResolvConf = "/etc/resolv.conf")
{
    /// <summary>localhost, and the container's own name at its address.</summary>
    public string Hosts(Ipv4 address) =>
        $"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{address} {Hostname}\n";

    /// <summary>The name servers, one line each, or a comment saying why there is none.</summary>
    public string Resolv()
    {
        var servers = DnsServers.Count > 0 ? DnsServers : HostNameServers(HostResolvConf);
        return servers.Count == 0
            ? "# no name server: the host's are all on loopback and none is configured (garden.network.dns-servers)\n"
            : string.Concat(servers.Select(s => $"nameserver {s}\n"));
    }

    /// <summary>The IPv4 name servers of a resolv.conf that a container can reach (not on 127.0.0.0/8); none when the
    /// file cannot be read.</summary>
    public static IReadOnlyList<string> HostNameServers(string resolvConf)
    {
        try
        {
            return File.ReadLines(resolvConf).Select(l => l.Trim().Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length >= 2 && f[0] == "nameserver" && Ipv4.TryParse(f[1], out var ip) && ip.Value >> 24 != 127)
                .Select(f => f[1]).ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>Writes both files: world-readable (they are mounted read-only and hold nothing secret), owned by
    /// <see cref="Owner"/>.</summary>
    public void Write(Ipv4 address)
    {
        File.WriteAllText(HostsPath, Hosts(address));
        File.WriteAllText(ResolvPath, Resolv());
        foreach (var file in new[] { HostsPath, ResolvPath })
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            Owner?.Own(file);
        }
    }
}
