using System.Text;
using Garden.Cli.Args;
using Garden.Protocol.Api;

namespace Garden.Cli.Commands;

/// <summary>info, stop, property.</summary>
internal static class ContainerCommands
{
    public static async Task<int> InfoAsync(CliContext ctx, InfoCommand cmd)
    {
        var info = await ctx.Client.InfoAsync(new InfoRequest { Handle = cmd.Handle });
        ctx.Output.Result(info, () => Describe(info));
        return 0;
    }

    internal static string Describe(ContainerInfo info)
    {
        var sb = new StringBuilder();
        sb.Append("handle:     ").Append(info.Handle).Append('\n');
        sb.Append("state:      ").Append(info.State).Append('\n');
        sb.Append("path:       ").Append(info.ContainerPath).Append('\n');
        sb.Append("rootfs:     ").Append(string.IsNullOrEmpty(info.Rootfs) ? "(default)" : info.Rootfs).Append('\n');
        sb.Append("privileged: ").Append(info.Privileged ? "yes" : "no").Append('\n');
        sb.Append("processes:  ").Append(info.ProcessIds.Count == 0 ? "none" : string.Join(" ", info.ProcessIds)).Append('\n');
        sb.Append("properties:");
        if (info.Properties.Count == 0) sb.Append(" none");
        foreach (var kv in info.Properties.OrderBy(p => p.Key, StringComparer.Ordinal))
            sb.Append("\n  ").Append(kv.Key).Append('=').Append(kv.Value);
        sb.Append("\nevents:");
        if (info.Events.Count == 0) sb.Append("     none");
        foreach (var e in info.Events)
            sb.Append("\n  ").Append(e);
        return sb.ToString();
    }

    public static async Task<int> StopAsync(CliContext ctx, StopCommand cmd)
    {
        await ctx.Client.StopAsync(new StopRequest { Handle = cmd.Handle, Kill = cmd.Kill });
        return 0;
    }

    public static async Task<int> PropertyAsync(CliContext ctx, PropertyCommand cmd)
    {
        switch (cmd.Action)
        {
            case PropertyAction.List:
                var all = await ctx.Client.PropertiesAsync(new PropertiesRequest { Handle = cmd.Handle });
                if (ctx.Output.Json) ctx.Output.Message(all);
                else ctx.Output.Lines(all.Properties.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));
                break;
            case PropertyAction.Get:
                var one = await ctx.Client.GetPropertyAsync(new GetPropertyRequest { Handle = cmd.Handle, Key = cmd.Key });
                ctx.Output.Result(one, () => one.Value);
                break;
            case PropertyAction.Set:
                await ctx.Client.SetPropertyAsync(new SetPropertyRequest { Handle = cmd.Handle, Key = cmd.Key, Value = cmd.Value });
                break;
            case PropertyAction.Remove:
                await ctx.Client.RemovePropertyAsync(new RemovePropertyRequest { Handle = cmd.Handle, Key = cmd.Key });
                break;
        }
        return 0;
    }
}
