using Grpc.Core;
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

    internal static Limits ToApi(LimitArgs l) => new()
    {
        MemoryBytes = l.Memory ?? 0, CpuWeight = l.CpuWeight ?? 0, CpuQuota = l.CpuQuota ?? 0, Pids = l.Pids ?? 0, DiskBytes = l.Disk ?? 0,
        BandwidthRate = l.Bandwidth?.Rate ?? 0, BandwidthBurst = l.Bandwidth?.Burst ?? 0,
    };

    /// <summary>garden limit HANDLE [flags]: changes the given limits (none: just reads them) and prints what is in force.</summary>
    public static async Task<int> LimitAsync(CliContext ctx, LimitCommand cmd)
    {
        var response = cmd.Limits.Any
            ? await ctx.Client.LimitAsync(new LimitRequest { Handle = cmd.Handle, Limits = ToApi(cmd.Limits) })
            : await ctx.Client.CurrentLimitsAsync(new CurrentLimitsRequest { Handle = cmd.Handle });
        ctx.Output.Result(response, () => DescribeLimits(response.Limits));
        return 0;
    }

    internal static string DescribeLimits(Limits l) =>
        $"memory:     {Size(l.MemoryBytes)}\n" +
        $"cpu weight: {(l.CpuWeight == 0 ? "default" : l.CpuWeight.ToString())}\n" +
        $"cpu quota:  {(l.CpuQuota == 0 ? "unlimited" : l.CpuQuota.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + " CPU")}\n" +
        $"pids:       {(l.Pids == 0 ? "unlimited" : l.Pids.ToString())}\n" +
        $"disk:       {Size(l.DiskBytes)}\n" +
        $"bandwidth:  {(l.BandwidthRate == 0 ? "unlimited" : $"{HostCommands.Bytes(l.BandwidthRate)} per second, burst {Size(l.BandwidthBurst, "default")}")}";

    public static async Task<int> MetricsAsync(CliContext ctx, MetricsCommand cmd)
    {
        var m = await ctx.Client.MetricsAsync(new MetricsRequest { Handle = cmd.Handle });
        ctx.Output.Result(m, () =>
            $"memory:   {Size(m.MemoryUsageBytes, "0")} used of {Size(m.MemoryLimitBytes)}" +
            (m.MemoryStat.TryGetValue("rss", out var rss) ? $" (rss {Size(rss)})" : "") + "\n" +
            $"oom kills: {m.OomKills}\n" +
            $"cpu:      {m.CpuUsageNs / 1e9:0.###} s (user {m.CpuUserNs / 1e9:0.###} s, system {m.CpuSystemNs / 1e9:0.###} s)\n" +
            $"pids:     {m.PidsCurrent} of {(m.PidsMax == 0 ? "unlimited" : m.PidsMax.ToString())}\n" +
            $"disk:     {Size(m.DiskUsedBytes, "0")} used of {Size(m.DiskLimitBytes, "no limit")}\n" +
            $"network:  received {HostCommands.Bytes(m.RxBytes)}, sent {HostCommands.Bytes(m.TxBytes)}\n" +
            $"age:      {TimeSpan.FromSeconds(m.AgeSeconds)}");
        return 0;
    }

    private static string Size(ulong bytes, string zero = "unlimited") => bytes == 0 ? zero : HostCommands.Bytes(bytes);

    internal static string Describe(ContainerInfo info)
    {
        var sb = new StringBuilder();
        sb.Append("handle:     ").Append(info.Handle).Append('\n');
        sb.Append("state:      ").Append(info.State).Append('\n');
        sb.Append("path:       ").Append(info.ContainerPath).Append('\n');
        sb.Append("rootfs:     ").Append(string.IsNullOrEmpty(info.Rootfs) ? "(default)" : info.Rootfs).Append('\n');
        sb.Append("privileged: ").Append(info.Privileged ? "yes" : "no").Append('\n');
        sb.Append("user ns:    ").Append(DescribeUserNamespace(info)).Append('\n');
        if (!string.IsNullOrEmpty(info.Network))
            sb.Append("network:    ").Append(info.Network).Append('\n');
        if (!string.IsNullOrEmpty(info.ContainerIp) || !string.IsNullOrEmpty(info.HostIp))
            sb.Append("ip:         ").Append(string.IsNullOrEmpty(info.ContainerIp) ? "none" : info.ContainerIp)
                .Append(string.IsNullOrEmpty(info.HostIp) ? "" : $" (host {info.HostIp})").Append('\n');
        if (info.MappedPorts.Count > 0)
            sb.Append("ports:      ").Append(NetworkCommands.Describe(info.MappedPorts)).Append('\n');
        foreach (var b in info.BindMounts)
            sb.Append("mount:      ").Append(b.Src).Append(" -> ").Append(b.Dst).Append(b.ReadOnly ? " (ro)" : " (rw)").Append('\n');
        sb.Append("grace time: ").Append(info.GraceTimeMs == 0 ? "never" : Duration(info.GraceTimeMs)).Append('\n');
        if (info.Limits is { } l && !l.Equals(new Limits()))
            sb.Append("limits:     ").Append(DescribeLimits(l).Replace("\n", "; ").Replace("  ", " ")).Append('\n');
        sb.Append("processes:  ").Append(info.ProcessIds.Count == 0 ? "none" : string.Join(" ", info.ProcessIds)).Append('\n');
        sb.Append("properties:");
        if (info.Properties.Count == 0) sb.Append(" none");
        foreach (var kv in info.Properties.OrderBy(p => p.Key, StringComparer.Ordinal))
            sb.Append("\n  ").Append(kv.Key).Append('=').Append(kv.Value);
        sb.Append("\nevents:");
        if (info.Events.Count == 0) sb.Append("     none");
        foreach (var e in info.Events)
        {
            sb.Append("\n  ").Append(e);
            if (e == "out of memory" && info.OomKills > 0)
                sb.Append($" ({info.OomKills} kill{(info.OomKills == 1 ? "" : "s")}, last at ")
                    .Append(DateTimeOffset.FromUnixTimeMilliseconds(info.LastOomUnixMs)
                        .ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture)).Append(')');
        }
        return sb.ToString();
    }

    /// <summary>The mapping in force ("uid/gid 0->4294967294 (1), 1->1 (4294967293)"), or why there is none.</summary>
    internal static string DescribeUserNamespace(ContainerInfo info)
    {
        if (info.UserNamespace is not { } u)
            return info.Privileged ? "none (privileged: container root is host root)"
                : "none (made by a build before user namespaces: container root is host root until it is destroyed)";
        static string Map(IEnumerable<IdMap> m) => string.Join(", ", m.Select(r => $"{r.ContainerId}->{r.HostId} ({r.Size})"));
        var uids = Map(u.UidMap);
        var gids = Map(u.GidMap);
        return uids == gids ? $"uid/gid {uids}" : $"uid {uids}; gid {gids}";
    }

    /// <summary>"1.5s" under a minute, else the TimeSpan form ("00:05:00", "1.00:00:00").</summary>
    internal static string Duration(ulong ms) => ms < 60_000
        ? (ms / 1000.0).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + "s"
        : TimeSpan.FromMilliseconds(ms).ToString("c", System.Globalization.CultureInfo.InvariantCulture);

    public static async Task<int> GraceTimeAsync(CliContext ctx, GraceTimeCommand cmd)
    {
        await ctx.Client.SetGraceTimeAsync(new SetGraceTimeRequest { Handle = cmd.Handle, GraceTimeMs = (ulong)cmd.GraceTime.TotalMilliseconds });
        return 0;
    }

    /// <summary>Follows the event stream until the daemon ends it or the user interrupts: one line (or JSON object) per event.</summary>
    public static async Task<int> EventsAsync(CliContext ctx, EventsCommand cmd)
    {
        using var call = ctx.Client.Events(new EventsRequest { Handle = cmd.Handle ?? "" });
        await foreach (var e in call.ResponseStream.ReadAllAsync())
        {
            if (ctx.Output.Json)
            {
                ctx.Output.Message(e);
                continue;
            }
            var at = DateTimeOffset.FromUnixTimeMilliseconds(e.AtUnixMs).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
            var line = new StringBuilder($"{at} {e.Handle} {e.Kind}");
            if (e.ProcessId.Length > 0) line.Append($" {e.ProcessId} exit {e.ExitCode}");
            if (e.Detail.Length > 0) line.Append($": {e.Detail}");
            ctx.Output.Line(line.ToString());
        }
        return 0;
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
