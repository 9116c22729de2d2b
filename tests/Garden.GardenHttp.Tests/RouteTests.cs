using Garden.Host.GardenHttp;

namespace Garden.GardenHttp.Tests;

/// <summary>The route table of routes.go, path decoding, query form decoding.</summary>
public sealed class RouteTests
{
    [Theory]
    [InlineData("GET", "/ping", RouteName.Ping)]
    [InlineData("GET", "/capacity", RouteName.Capacity)]
    [InlineData("GET", "/containers", RouteName.List)]
    [InlineData("POST", "/containers", RouteName.Create)]
    [InlineData("GET", "/containers/h/info", RouteName.Info)]
    [InlineData("GET", "/containers/bulk_info", RouteName.BulkInfo)]
    [InlineData("GET", "/containers/bulk_metrics", RouteName.BulkMetrics)]
    [InlineData("DELETE", "/containers/h", RouteName.Destroy)]
    [InlineData("PUT", "/containers/h/stop", RouteName.Stop)]
    [InlineData("PUT", "/containers/h/files", RouteName.StreamIn)]
    [InlineData("GET", "/containers/h/files", RouteName.StreamOut)]
    [InlineData("GET", "/containers/h/limits/bandwidth", RouteName.CurrentBandwidthLimits)]
    [InlineData("GET", "/containers/h/limits/cpu", RouteName.CurrentCPULimits)]
    [InlineData("GET", "/containers/h/limits/disk", RouteName.CurrentDiskLimits)]
    [InlineData("GET", "/containers/h/limits/memory", RouteName.CurrentMemoryLimits)]
    [InlineData("POST", "/containers/h/net/in", RouteName.NetIn)]
    [InlineData("POST", "/containers/h/net/out", RouteName.NetOut)]
    [InlineData("POST", "/containers/h/net/out/bulk", RouteName.BulkNetOut)]
    [InlineData("GET", "/containers/h/processes/p/attaches/1/stdout", RouteName.Stdout)]
    [InlineData("GET", "/containers/h/processes/p/attaches/1/stderr", RouteName.Stderr)]
    [InlineData("POST", "/containers/h/processes", RouteName.Run)]
    [InlineData("GET", "/containers/h/processes/p", RouteName.Attach)]
    [InlineData("PUT", "/containers/h/grace_time", RouteName.SetGraceTime)]
    [InlineData("GET", "/containers/h/properties", RouteName.Properties)]
    [InlineData("GET", "/containers/h/properties/k", RouteName.Property)]
    [InlineData("PUT", "/containers/h/properties/k", RouteName.SetProperty)]
    [InlineData("DELETE", "/containers/h/properties/k", RouteName.RemoveProperty)]
    [InlineData("GET", "/containers/h/metrics", RouteName.Metrics)]
    public void Every_route_of_routes_go_is_found(string method, string path, RouteName name)
    {
        var m = GardenRoutes.Match(method, path);
        Assert.Equal(name, m.Route.Name);
        if (path.StartsWith("/containers/h", StringComparison.Ordinal)) Assert.Equal("h", m.Handle);
    }

    [Fact]
    public void The_table_has_the_28_routes_of_routes_go_and_4_hijack_ones()
    {
        Assert.Equal(28, GardenRoutes.All.Count);
        Assert.Equal(28, GardenRoutes.All.Select(r => r.Name).Distinct().Count());
        Assert.Equal([RouteName.Stdout, RouteName.Stderr, RouteName.Run, RouteName.Attach], GardenRoutes.All.Where(r => r.Hijack).Select(r => r.Name));
    }

    [Fact]
    public void Literal_segments_win_over_a_handle_only_for_their_own_method()
    {
        Assert.Equal(RouteName.BulkInfo, GardenRoutes.Match("GET", "/containers/bulk_info").Route.Name);
        var destroy = GardenRoutes.Match("DELETE", "/containers/bulk_info");
        Assert.Equal((RouteName.Destroy, "bulk_info"), (destroy.Route.Name, destroy.Handle));
        var info = GardenRoutes.Match("GET", "/containers/bulk_info/info");
        Assert.Equal((RouteName.Info, "bulk_info"), (info.Route.Name, info.Handle));
    }

    [Fact]
    public void Parameters_are_percent_decoded_after_the_path_is_split_and_plus_stays_plus()
    {
        var m = GardenRoutes.Match("GET", "/containers/caf%C3%A9%20h+1/processes/a%2Fb/attaches/7/stdout");
        Assert.Equal(("café h+1", "a/b", "7"), (m.Handle, m["pid"], m["streamid"]));
        Assert.Equal("k y", GardenRoutes.Match("GET", "/containers/h/properties/k%20y")["key"]);
    }

    [Fact]
    public void The_query_is_form_decoded_before_handles_are_split()
    {
        // what Go's client sends for BulkInfo(["h 1","h2"]) and for List({"team":"a b","x,y":"1+1"})
        var bulk = GardenRoutes.Match("GET", "/containers/bulk_info?handles=h+1%2Ch2");
        Assert.Equal("h 1,h2", bulk.QueryValue("handles"));
        var list = GardenRoutes.Match("GET", "/containers?team=a+b&x%2Cy=1%2B1");
        Assert.Equal([new("team", "a b"), new("x,y", "1+1")], list.Query);
        Assert.Equal([new("a", ""), new("b", "1")], GardenRoutes.ParseQuery("a&&b=1&"));
        Assert.Equal("first", GardenRoutes.Match("GET", "/containers?k=first&k=second").QueryValue("k"));
    }

    [Theory]
    [InlineData("GET", "/nope", 404)]
    [InlineData("GET", "/containers/h/nope", 404)]
    [InlineData("GET", "/containers//info", 404)]          // an empty handle matches nothing
    [InlineData("GET", "/ping/", 404)]
    [InlineData("POST", "/ping", 405)]
    [InlineData("PATCH", "/containers/h", 405)]
    [InlineData("GET", "/containers/h%zz/info", 400)]
    [InlineData("GET", "/containers/h%2/info", 400)]
    [InlineData("GET", "/containers/%ff%fe/info", 400)]    // not UTF-8
    [InlineData("GET", "/containers?k=%", 400)]
    public void What_matches_no_route_is_a_problem_with_its_status(string method, string target, int status) =>
        Assert.Equal(status, Assert.Throws<HttpProblem>(() => GardenRoutes.Match(method, target)).Status);

    [Fact]
    public void A_405_names_the_methods_the_path_allows() =>
        Assert.Contains("allowed: GET, PUT, DELETE", Assert.Throws<HttpProblem>(() => GardenRoutes.Match("POST", "/containers/h/properties/k")).Message);
}
