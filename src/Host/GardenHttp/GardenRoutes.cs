using System.Text;

namespace Garden.Host.GardenHttp;

/// <summary>The routes of Garden's API (code.cloudfoundry.org/garden/routes/routes.go), by the names the Go client uses.</summary>
public enum RouteName
{
    Ping, Capacity, List, Create, Info, BulkInfo, BulkMetrics, Destroy, Stop, StreamIn, StreamOut, Stdout, Stderr,
    CurrentBandwidthLimits, CurrentCPULimits, CurrentDiskLimits, CurrentMemoryLimits, NetIn, NetOut, BulkNetOut, Run, Attach,
    SetGraceTime, Properties, Property, SetProperty, RemoveProperty, Metrics,
}

/// <summary>A route: method and path pattern (":name" segments are parameters). Hijack routes answer with a head and
/// then take the connection over (Run, Attach, the stdout and stderr streams).</summary>
public sealed record Route(RouteName Name, string Method, string Pattern)
{
    public string[] Segments { get; } = Pattern.Split('/', StringSplitOptions.RemoveEmptyEntries);
    public bool Hijack => Name is RouteName.Run or RouteName.Attach or RouteName.Stdout or RouteName.Stderr;
    public int Literals => Segments.Count(s => !s.StartsWith(':'));
}

/// <summary>A request matched to its route: the decoded path parameters and query (in order, repeated keys kept).</summary>
public sealed record RouteMatch(Route Route, IReadOnlyDictionary<string, string> Parameters, IReadOnlyList<KeyValuePair<string, string>> Query)
{
    public string this[string parameter] => Parameters[parameter];
    public string? Handle => Parameters.GetValueOrDefault("handle");
    /// <summary>The first value of a query key, as Go's <c>url.Values.Get</c>.</summary>
    public string? QueryValue(string key) => Query.FirstOrDefault(q => q.Key == key).Value;
}

public static class GardenRoutes
{
    public static readonly IReadOnlyList<Route> All =
    [
        new(RouteName.Ping, "GET", "/ping"),
        new(RouteName.Capacity, "GET", "/capacity"),
        new(RouteName.List, "GET", "/containers"),
        new(RouteName.Create, "POST", "/containers"),
        new(RouteName.Info, "GET", "/containers/:handle/info"),
        new(RouteName.BulkInfo, "GET", "/containers/bulk_info"),
        new(RouteName.BulkMetrics, "GET", "/containers/bulk_metrics"),
        new(RouteName.Destroy, "DELETE", "/containers/:handle"),
        new(RouteName.Stop, "PUT", "/containers/:handle/stop"),
        new(RouteName.StreamIn, "PUT", "/containers/:handle/files"),
        new(RouteName.StreamOut, "GET", "/containers/:handle/files"),
        new(RouteName.CurrentBandwidthLimits, "GET", "/containers/:handle/limits/bandwidth"),
        new(RouteName.CurrentCPULimits, "GET", "/containers/:handle/limits/cpu"),
        new(RouteName.CurrentDiskLimits, "GET", "/containers/:handle/limits/disk"),
        new(RouteName.CurrentMemoryLimits, "GET", "/containers/:handle/limits/memory"),
        new(RouteName.NetIn, "POST", "/containers/:handle/net/in"),
        new(RouteName.NetOut, "POST", "/containers/:handle/net/out"),
        new(RouteName.BulkNetOut, "POST", "/containers/:handle/net/out/bulk"),
        new(RouteName.Stdout, "GET", "/containers/:handle/processes/:pid/attaches/:streamid/stdout"),
        new(RouteName.Stderr, "GET", "/containers/:handle/processes/:pid/attaches/:streamid/stderr"),
        new(RouteName.Run, "POST", "/containers/:handle/processes"),
        new(RouteName.Attach, "GET", "/containers/:handle/processes/:pid"),
        new(RouteName.SetGraceTime, "PUT", "/containers/:handle/grace_time"),
        new(RouteName.Properties, "GET", "/containers/:handle/properties"),
        new(RouteName.Property, "GET", "/containers/:handle/properties/:key"),
        new(RouteName.SetProperty, "PUT", "/containers/:handle/properties/:key"),
        new(RouteName.RemoveProperty, "DELETE", "/containers/:handle/properties/:key"),
        new(RouteName.Metrics, "GET", "/containers/:handle/metrics"),
    ];

    /// <summary>Finds the route of a request. Path segments are percent-decoded one by one after splitting on '/' (a
    /// handle may hold a space or non-ASCII, sent as %20 / UTF-8 %XX; '+' in a path is a plus); the query is
    /// form-decoded ('+' is a space) before anything splits its values. Among routes that fit, the one with more
    /// literal segments wins: <c>GET /containers/bulk_info</c> is BulkInfo, <c>DELETE /containers/bulk_info</c>
    /// destroys a container of that name. No route → 404; a route, but not for this method → 405; an empty segment
    /// (a parameter cannot be empty) → 404; malformed encoding → 400.</summary>
    public static RouteMatch Match(string method, string target)
    {
        var q = target.IndexOf('?');
        var rawPath = q < 0 ? target : target[..q];
        var rawQuery = q < 0 ? "" : target[(q + 1)..];
        var hash = rawQuery.IndexOf('#');
        if (hash >= 0) rawQuery = rawQuery[..hash];
        if (rawPath.Contains('#')) rawPath = rawPath[..rawPath.IndexOf('#')];

        var rawSegments = rawPath.Split('/');
        // "/a/b" → ["", "a", "b"]; a trailing slash or "//" leaves an empty segment, which matches nothing
        var segments = rawSegments.Skip(1).Select(s => Decode(s, plusIsSpace: false, "path")).ToArray();

        Route? best = null;
        var pathMatched = new List<Route>();
        foreach (var route in All)
        {
            if (route.Segments.Length != segments.Length || !Fits(route, segments)) continue;
            pathMatched.Add(route);
            if (route.Method == method && (best is null || route.Literals > best.Literals)) best = route;
        }
        if (best is null)
        {
            if (pathMatched.Count == 0) throw new HttpProblem(404, $"no such route: {method} {HttpRequestHead.Printable(rawPath)}");
            throw new HttpProblem(405, $"{method} is not allowed on {HttpRequestHead.Printable(rawPath)} (allowed: {string.Join(", ", pathMatched.Select(r => r.Method).Distinct())})");
        }
        var parameters = new Dictionary<string, string>();
        for (var i = 0; i < best.Segments.Length; i++)
            if (best.Segments[i].StartsWith(':')) parameters[best.Segments[i][1..]] = segments[i];
        return new RouteMatch(best, parameters, ParseQuery(rawQuery));
    }

    private static bool Fits(Route route, string[] segments)
    {
        for (var i = 0; i < segments.Length; i++)
        {
            var pattern = route.Segments[i];
            if (segments[i].Length == 0) return false;
            if (!pattern.StartsWith(':') && pattern != segments[i]) return false;
        }
        return true;
    }

    /// <summary>Form decoding of <c>k=v&amp;k2=v2</c> (Go's <c>url.ParseQuery</c>): '+' is a space, %XX a byte of UTF-8;
    /// a pair without '=' has an empty value; empty pairs are skipped.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> ParseQuery(string rawQuery)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (var pair in rawQuery.Split('&'))
        {
            if (pair.Length == 0) continue;
            var eq = pair.IndexOf('=');
            var key = Decode(eq < 0 ? pair : pair[..eq], plusIsSpace: true, "query");
            var value = eq < 0 ? "" : Decode(pair[(eq + 1)..], plusIsSpace: true, "query");
            result.Add(new(key, value));
        }
        return result;
    }

    /// <summary>Strict percent-decoding: a '%' must start two hex digits, and the bytes must be UTF-8.</summary>
    public static string Decode(string s, bool plusIsSpace, string where)
    {
        if (s.IndexOf('%') < 0) return plusIsSpace ? s.Replace('+', ' ') : s;
        var bytes = new List<byte>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '%')
            {
                if (i + 2 >= s.Length || !char.IsAsciiHexDigit(s[i + 1]) || !char.IsAsciiHexDigit(s[i + 2]))
                    throw new HttpProblem(400, $"malformed percent-encoding in the {where}: \"{HttpRequestHead.Printable(s)}\"");
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                bytes.Add(c == '+' && plusIsSpace ? (byte)' ' : (byte)c);
            }
        }
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.ToArray());
        }
        catch (DecoderFallbackException)
        {
            throw new HttpProblem(400, $"the {where} \"{HttpRequestHead.Printable(s)}\" decodes to bytes that are not UTF-8");
        }
    }
}
