using Garden.Cli.Args;
using Garden.Protocol.Api;

namespace Garden.Cli.Commands;

/// <summary>net-in, net-out.</summary>
internal static class NetworkCommands
{
    /// <summary>garden net-in HANDLE HOST-PORT:CONTAINER-PORT: prints the mapping in force (the host port the pool gave for 0).</summary>
    public static async Task<int> NetInAsync(CliContext ctx, NetInCommand cmd)
    {
        var response = await ctx.Client.NetInAsync(new NetInRequest
        {
            Handle = cmd.Handle, HostPort = cmd.Mapping.HostPort, ContainerPort = cmd.Mapping.ContainerPort,
        });
        ctx.Output.Result(response, () => $"{response.HostPort}:{response.ContainerPort}");
        return 0;
    }

    public static async Task<int> NetOutAsync(CliContext ctx, NetOutCommand cmd)
    {
        await ctx.Client.NetOutAsync(new NetOutRequest { Handle = cmd.Handle, Rule = ToApi(cmd.Rule) });
        return 0;
    }

    internal static PortMapping ToApi(PortMappingArg m) => new() { HostPort = m.HostPort, ContainerPort = m.ContainerPort };

    internal static NetOutRule ToApi(NetOutRuleArg r)
    {
        var rule = new NetOutRule
        {
            Protocol = r.Protocol switch
            {
                NetProtocol.Tcp => NetOutRule.Types.Protocol.Tcp,
                NetProtocol.Udp => NetOutRule.Types.Protocol.Udp,
                NetProtocol.Icmp => NetOutRule.Types.Protocol.Icmp,
                _ => NetOutRule.Types.Protocol.All,
            },
            Log = r.Log,
        };
        rule.Networks.Add(r.Networks.Select(n => new IpRange { Start = n.Start, End = n.End }));
        rule.Ports.Add(r.Ports.Select(p => new PortRange { Start = p.Start, End = p.End }));
        if (r.Icmp is { } icmp) rule.Icmp = new IcmpControl { Type = icmp.Type, Code = icmp.Code };
        return rule;
    }

    /// <summary>Mapped ports as HOST:CONTAINER, space-separated (the form net-in takes and prints).</summary>
    internal static string Describe(IEnumerable<PortMapping> ports) =>
        string.Join(" ", ports.Select(p => $"{p.HostPort}:{p.ContainerPort}"));
}
