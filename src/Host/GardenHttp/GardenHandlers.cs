using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Garden.Actors;
using Microsoft.Extensions.Logging;
using Api = Garden.Protocol.Api;

namespace Garden.Host.GardenHttp;

/// <summary>Garden's plain routes (everything but Run, Attach and the output streams): a JSON (or tar) request in, one
/// backend call, a JSON (or tar) answer out — always a body, <c>{}</c> at least (an empty 2xx body is an error to the
/// Go client).</summary>
public sealed class GardenHandlers(IGardenHttpBackend backend, GardenHttpOptions options, ILogger log)
{
    private static GardenJsonContext J => GardenJsonContext.Wire;

    public async Task ServeAsync(HttpConnection conn, RouteMatch m, HttpRequestHead head)
    {
        var body = conn.Body(head, m.Route.Name == RouteName.StreamIn ? options.StreamBodyIdleTimeout : options.JsonBodyTimeout);
        var ct = conn.Aborted;
        var h = m.Handle ?? "";
        try
        {
            switch (m.Route.Name)
            {
                case RouteName.StreamIn:
                    await StreamInAsync(conn, m, body);
                    return;
                case RouteName.StreamOut:
                    await StreamOutAsync(conn, m);
                    return;
            }
            var json = m.Route.Name switch
            {
                RouteName.Ping => await Done(backend.PingAsync(new Api.PingRequest(), ct)),
                RouteName.Capacity => HttpConnection.Json(GardenConvert.FromCapacity(await backend.CapacityAsync(new Api.CapacityRequest(), ct)), J.Capacity),
                RouteName.List => HttpConnection.Json(await ListAsync(m, ct), J.ListResponse),
                RouteName.Create => HttpConnection.Json(new CreateResponse
                {
                    Handle = (await backend.CreateAsync(GardenConvert.ToCreate(await ReadJsonAsync(body, J.ContainerSpec, "ContainerSpec") ?? new()), ct)).Handle,
                }, J.CreateResponse),
                RouteName.Info => HttpConnection.Json(GardenConvert.FromInfo(await backend.InfoAsync(new Api.InfoRequest { Handle = h }, ct)), J.ContainerInfo),
                RouteName.BulkInfo => HttpConnection.Json(await BulkInfoAsync(m, ct), J.SortedDictionaryStringContainerInfoEntry),
                RouteName.BulkMetrics => HttpConnection.Json(await BulkMetricsAsync(m, ct), J.SortedDictionaryStringContainerMetricsEntry),
                RouteName.Destroy => await Done(backend.DestroyAsync(new Api.DestroyRequest { Handle = h }, ct)),
                RouteName.Stop => await Done(backend.StopAsync(new Api.StopRequest
                {
                    Handle = h, Kill = (await ReadJsonAsync(body, J.StopRequest, "{\"kill\":true|false}", optional: true))?.Kill ?? false,
                }, ct)),
                RouteName.CurrentBandwidthLimits => HttpConnection.Json(GardenConvert.FromBandwidth(await LimitsAsync(h, ct)), J.BandwidthLimits),
                RouteName.CurrentCPULimits => HttpConnection.Json(GardenConvert.FromCpu(await LimitsAsync(h, ct)), J.CPULimits),
                RouteName.CurrentDiskLimits => HttpConnection.Json(GardenConvert.FromDisk(await LimitsAsync(h, ct)), J.DiskLimits),
                RouteName.CurrentMemoryLimits => HttpConnection.Json(GardenConvert.FromMemory(await LimitsAsync(h, ct)), J.MemoryLimits),
                RouteName.NetIn => HttpConnection.Json(GardenConvert.FromNetIn(await backend.NetInAsync(
                    GardenConvert.ToNetIn(h, await ReadJsonAsync(body, J.NetInRequest, "NetInRequest") ?? new()), ct)), J.NetInResponse),
                RouteName.NetOut => await Done(backend.NetOutAsync(GardenConvert.ToNetOut(h, await ReadJsonAsync(body, J.NetOutRule, "NetOutRule")), ct)),
                RouteName.BulkNetOut => await Done(backend.BulkNetOutAsync(
                    GardenConvert.ToBulkNetOut(h, await ReadJsonAsync(body, J.ListNetOutRule, "list of NetOutRule")), ct)),
                RouteName.SetGraceTime => await Done(backend.SetGraceTimeAsync(
                    GardenConvert.ToGraceTime(h, await ReadJsonAsync(body, J.Int64, "duration in nanoseconds")), ct)),
                RouteName.Properties => HttpConnection.Json(new SortedDictionary<string, string>(
                    (await backend.PropertiesAsync(new Api.PropertiesRequest { Handle = h }, ct)).Properties, StringComparer.Ordinal), J.SortedDictionaryStringString),
                RouteName.Property => HttpConnection.Json(new PropertyValue
                {
                    Value = (await backend.GetPropertyAsync(new Api.GetPropertyRequest { Handle = h, Key = m["key"] }, ct)).Value,
                }, J.PropertyValue),
                RouteName.SetProperty => await Done(backend.SetPropertyAsync(new Api.SetPropertyRequest
                {
                    Handle = h, Key = m["key"], Value = (await ReadJsonAsync(body, J.PropertyValue, "{\"value\":\"…\"}"))?.Value ?? "",
                }, ct)),
                RouteName.RemoveProperty => await Done(backend.RemovePropertyAsync(new Api.RemovePropertyRequest { Handle = h, Key = m["key"] }, ct)),
                RouteName.Metrics => HttpConnection.Json(GardenConvert.FromMetrics(await backend.MetricsAsync(new Api.MetricsRequest { Handle = h }, ct)), J.Metrics),
                _ => throw new InvalidOperationException($"route {m.Route.Name} is not a plain route"),
            };
            await conn.WriteAsync(HttpWire.Response(200, HttpWire.Json, json));
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Unexpected(e, m);
            await conn.SendErrorAsync(e, hijackRoute: false);
        }
    }

    private static async Task<byte[]> Done<T>(Task<T> call)
    {
        await call;
        return HttpConnection.Json(Empty.Instance, J.Empty);
    }

    private Task<Api.LimitsResponse> LimitsAsync(string handle, CancellationToken ct) =>
        backend.CurrentLimitsAsync(new Api.CurrentLimitsRequest { Handle = handle }, ct);

    /// <summary>Every query parameter is a property filter (Garden has no reserved one); a key given twice counts once,
    /// with its first value (Go's <c>url.Values.Get</c>).</summary>
    private async Task<ListResponse> ListAsync(RouteMatch m, CancellationToken ct)
    {
        var request = new Api.ListRequest();
        foreach (var (k, v) in m.Query) request.Properties.TryAdd(k, v);
        return new ListResponse { Handles = [.. (await backend.ListAsync(request, ct)).Handles] };
    }

    /// <summary><c>handles=a,b</c> (form-decoded before the split); none → <c>{}</c> without asking anyone.</summary>
    private static List<string> Handles(RouteMatch m) =>
        [.. (m.QueryValue("handles") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Distinct()];

    private async Task<SortedDictionary<string, ContainerInfoEntry>> BulkInfoAsync(RouteMatch m, CancellationToken ct)
    {
        var handles = Handles(m);
        if (handles.Count == 0) return new(StringComparer.Ordinal);
        var request = new Api.BulkInfoRequest();
        request.Handles.AddRange(handles);
        return GardenConvert.FromBulkInfo(await backend.BulkInfoAsync(request, ct));
    }

    private async Task<SortedDictionary<string, ContainerMetricsEntry>> BulkMetricsAsync(RouteMatch m, CancellationToken ct)
    {
        var handles = Handles(m);
        if (handles.Count == 0) return new(StringComparer.Ordinal);
        var request = new Api.BulkMetricsRequest();
        request.Handles.AddRange(handles);
        return GardenConvert.FromBulkMetrics(await backend.BulkMetricsAsync(request, ct));
    }

    /// <summary>The tar flows to the backend as it arrives. Whatever the outcome, the rest of the body is read before
    /// answering: answering an upload half-way lets the client run into a closed connection instead of the answer.</summary>
    private async Task StreamInAsync(HttpConnection conn, RouteMatch m, RequestBody body)
    {
        var request = new Api.StreamInRequest { Handle = m.Handle!, Path = m.QueryValue("destination") ?? "", User = m.QueryValue("user") ?? "" };
        Exception? failure = null;
        try
        {
            await backend.StreamInAsync(request, body, conn.Aborted);
        }
        catch (Exception e) when (e is not OperationCanceledException || !conn.Aborted.IsCancellationRequested)
        {
            failure = e;
        }
        if (!body.Completed) await DrainAsync(body);
        if (failure is not null)
        {
            Unexpected(failure, m);
            await conn.SendErrorAsync(failure, hijackRoute: false);
            return;
        }
        await conn.WriteAsync(HttpWire.Response(200, HttpWire.Json, HttpConnection.Json(Empty.Instance, J.Empty)));
    }

    private async Task DrainAsync(RequestBody body)
    {
        var scratch = new byte[64 * 1024];
        long read = 0;
        try
        {
            int n;
            while (read < options.MaxLingerBytes && (n = await body.ReadAsync(scratch)) > 0) read += n;
        }
        catch (Exception e) when (e is HttpProblem or IOException or OperationCanceledException)
        {
            // the body is broken or stalled: answer anyway
        }
    }

    /// <summary>The tar, chunked. Errors are answered only while nothing has been sent: the first bytes are read before
    /// the head goes out. A failure later ends the connection without the last chunk, so the client sees the body cut
    /// (unexpected EOF), never a short tar that looks whole.</summary>
    private async Task StreamOutAsync(HttpConnection conn, RouteMatch m)
    {
        var request = new Api.StreamOutRequest { Handle = m.Handle!, Path = m.QueryValue("source") ?? "", User = m.QueryValue("user") ?? "" };
        Stream tar;
        var buffer = new byte[64 * 1024];
        int n;
        try
        {
            tar = await backend.StreamOutAsync(request, conn.Aborted);
        }
        catch (Exception e) when (e is not OperationCanceledException || !conn.Aborted.IsCancellationRequested)
        {
            Unexpected(e, m);
            await conn.SendErrorAsync(e, hijackRoute: false);
            return;
        }
        await using (tar)
        {
            try
            {
                n = await tar.ReadAsync(buffer, conn.Aborted);
            }
            catch (Exception e) when (e is not OperationCanceledException || !conn.Aborted.IsCancellationRequested)
            {
                Unexpected(e, m);
                await conn.SendErrorAsync(e, hijackRoute: false);
                return;
            }
            await conn.WriteAsync(HttpWire.ChunkedHead(200, "application/x-tar"));
            try
            {
                for (; n > 0; n = await tar.ReadAsync(buffer, conn.Aborted))
                {
                    await conn.WriteAsync(HttpWire.ChunkPrefix(n));
                    await conn.WriteAsync(buffer.AsMemory(0, n));
                    await conn.WriteAsync(HttpWire.CrLf);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException || !conn.Aborted.IsCancellationRequested)
            {
                log.LogWarning("garden-http: stream-out of {Path} from {Handle} broke mid-stream: {Error}", request.Path, request.Handle, e.Message);
                return;   // no last chunk: the client sees the tar cut off
            }
            await conn.WriteAsync(HttpWire.LastChunk);
        }
    }

    /// <summary>A JSON request body. Missing (empty) → InvalidArgument, unless <paramref name="optional"/>; not JSON,
    /// or not of the type → InvalidArgument with the parser's words (which name the position and the field).
    /// <c>null</c> is the zero value, as for Go.</summary>
    public static async Task<T?> ReadJsonAsync<T>(RequestBody body, JsonTypeInfo<T> type, string what, GardenHttpOptions limits, bool optional = false)
    {
        var bytes = await body.ReadAllAsync(limits.MaxJsonBodyBytes, limits.JsonBodyTimeout);
        if (bytes.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
            return optional ? default : throw GardenException.Invalid("request body", $"missing: expected a JSON {what}");
        try
        {
            return JsonSerializer.Deserialize(bytes, type);
        }
        catch (JsonException e)
        {
            throw GardenException.Invalid("request body", $"not a JSON {what}: {e.Message}");
        }
    }

    private Task<T?> ReadJsonAsync<T>(RequestBody body, JsonTypeInfo<T> type, string what, bool optional = false) =>
        ReadJsonAsync(body, type, what, options, optional);

    /// <summary>What no domain rule explains is worth a line in the log.</summary>
    private void Unexpected(Exception e, RouteMatch m)
    {
        var status = GardenErrors.From(e).Status;
        if (status >= 500 && status != 503)
            log.LogWarning(e, "garden-http: {Route} {Handle}: {Error}", m.Route.Name, m.Handle, e.Message);
        else
            log.LogDebug("garden-http: {Route} {Handle}: {Status} {Error}", m.Route.Name, m.Handle, status, e.Message);
    }
}
