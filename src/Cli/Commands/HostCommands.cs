using Garden.Cli.Args;
using Garden.Protocol.Api;

namespace Garden.Cli.Commands;

/// <summary>ping, capacity, create, list, destroy.</summary>
internal static class HostCommands
{
    /// <summary>Both ends: garden's version (printed first, so it shows even when gardend does not answer) and gardend's,
    /// from Ping (its full build; the release alone from a gardend older than that field). --json: {"client", "server"}.</summary>
    public static async Task<int> VersionAsync(CliContext ctx, string client)
    {
        if (!ctx.Output.Json) ctx.Output.Line($"garden {client} (client)");
        var response = await ctx.Client.PingAsync(new PingRequest());
        var server = string.IsNullOrEmpty(response.Build) ? response.Version : response.Build;
        if (!ctx.Output.Json)
        {
            ctx.Output.Line($"gardend {server} (server)");
            return 0;
        }
        using var buffer = new MemoryStream();
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("client", client);
            json.WriteString("server", server);
            json.WriteEndObject();
        }
        ctx.Output.Line(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        return 0;
    }

    public static async Task<int> PingAsync(CliContext ctx)
    {
        var response = await ctx.Client.PingAsync(new PingRequest());
        ctx.Output.Result(response, () => string.IsNullOrEmpty(response.Version) ? "ok" : response.Version);
        return 0;
    }

    public static async Task<int> CapacityAsync(CliContext ctx)
    {
        var c = await ctx.Client.CapacityAsync(new CapacityRequest());
        ctx.Output.Result(c, () =>
            $"memory:         {Bytes(c.MemoryBytes)}\n" +
            $"disk:           {Bytes(c.DiskBytes)}\n" +
            $"max containers: {c.MaxContainers}");
        return 0;
    }

    public static async Task<int> CreateAsync(CliContext ctx, CreateCommand cmd)
    {
        var spec = new ContainerSpec
        {
            Handle = cmd.Handle ?? "",
            Rootfs = cmd.Rootfs ?? "",
            Privileged = cmd.Privileged,
            Network = cmd.Network ?? "",
        };
        spec.Env.Add(cmd.Env);
        foreach (var (k, v) in cmd.Properties) spec.Properties[k] = v;
        if (cmd.Limits is { Any: true } limits) spec.Limits = ContainerCommands.ToApi(limits);
        spec.NetIn.Add((cmd.NetIn ?? []).Select(NetworkCommands.ToApi));
        spec.BindMounts.Add((cmd.BindMounts ?? []).Select(b => new BindMount { Src = b.Source, Dst = b.Destination, ReadOnly = b.ReadOnly }));
        if (cmd.GraceTime is { } grace) spec.GraceTimeMs = (ulong)grace.TotalMilliseconds;
        var response = await ctx.Client.CreateAsync(new CreateRequest { Spec = spec });
        ctx.Output.Result(response, () => response.Handle);
        return 0;
    }

    public static async Task<int> ListAsync(CliContext ctx, ListCommand cmd)
    {
        var request = new ListRequest();
        foreach (var (k, v) in cmd.Properties) request.Properties[k] = v;
        var response = await ctx.Client.ListAsync(request);
        if (ctx.Output.Json) ctx.Output.Message(response);
        else ctx.Output.Lines(response.Handles);
        return 0;
    }

    /// <summary>Destroys each handle in turn; a failure is reported and the rest still go ahead,
    /// except when the daemon cannot be reached at all.</summary>
    public static async Task<int> DestroyAsync(CliContext ctx, DestroyCommand cmd)
    {
        int result = 0;
        foreach (var handle in cmd.Handles)
        {
            try
            {
                await ctx.Client.DestroyAsync(new DestroyRequest { Handle = handle });
            }
            catch (Exception e)
            {
                var message = Errors.Describe(e, ctx.Address);
                if (message.StartsWith("cannot reach", StringComparison.Ordinal)) throw;
                ctx.Output.Error($"destroy {handle}: {message}");
                result = 1;
            }
        }
        return result;
    }

    internal static string Bytes(ulong bytes)
    {
        string[] units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if (bytes < 1024) return $"{bytes} bytes";
        double value = bytes;
        int unit = -1;
        while (value >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        return $"{value.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)} {units[unit]} ({bytes} bytes)";
    }
}
