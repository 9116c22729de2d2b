using System.Diagnostics;
using System.Text.Json.Nodes;
using Garden.Protocol.Api;
using Garden.Testing;

/// <summary>Images: Create from a 3-layer image (the test image: a busybox rootfs, a whiteout, a file of uid 1000, a third
/// layer) pulled from a local docker-registry and from an OCI layout, cold (empty layer store: download, verify, unpack)
/// and warm (layers in the store: manifest and config only), against Create from the directory rootfs. Client round trips.</summary>
public static class ImageBench
{
    public static async Task<JsonObject?> RunAsync(Garden.Protocol.Api.Garden.GardenClient client, string stateDir, int reps)
    {
        if (!File.Exists("/usr/bin/umoci") || !File.Exists("/usr/bin/skopeo") || !File.Exists("/usr/bin/docker-registry"))
        {
            Console.WriteLine("images: skipped (umoci, skopeo and docker-registry are needed: make deps)");
            return null;
        }
        using var images = await TestImages.BuildAsync();
        await using var registry = await RegistryServer.StartAsync();
        await images.PushAsync(registry.Port);
        var layers = Path.Combine(stateDir, "images", "layers");
        var n = Math.Max(5, reps / 3);

        async Task<double> CreateDestroy(ContainerSpec spec)
        {
            var sw = Stopwatch.StartNew();
            var h = (await client.CreateAsync(new CreateRequest { Spec = spec })).Handle;
            var ms = sw.Elapsed.TotalMilliseconds;
            await client.DestroyAsync(new DestroyRequest { Handle = h });
            return ms;
        }

        var result = new JsonObject();
        var fromDir = new List<double>();
        for (var i = 0; i < n; i++) fromDir.Add(await CreateDestroy(new ContainerSpec()));
        result["create_from_directory_p50_ms"] = Math.Round(P(fromDir), 3);
        Console.WriteLine($"images ({n} repetitions, p50 ms of Create): from the directory rootfs {P(fromDir):F1}");
        foreach (var (name, reference) in new[]
        {
            ("registry", $"docker://{registry.Host}/test/img:{TestImages.Tag}"),
            ("oci_layout", $"oci://{images.Layout}:{TestImages.Tag}"),
        })
        {
            List<double> cold = [], warm = [];
            for (var i = 0; i < n; i++)
            {
                // nothing holds a layer once its container is gone: the store is emptied for a cold pull
                foreach (var l in Directory.GetDirectories(layers)) Directory.Delete(l, recursive: true);
                cold.Add(await CreateDestroy(new ContainerSpec { Image = reference }));
            }
            for (var i = 0; i < n; i++) warm.Add(await CreateDestroy(new ContainerSpec { Image = reference }));
            result[name] = new JsonObject
            {
                ["create_cold_p50_ms"] = Math.Round(P(cold), 3), ["create_warm_p50_ms"] = Math.Round(P(warm), 3),
                ["pull_cold_ms"] = Math.Round(P(cold) - P(fromDir), 3), ["pull_warm_ms"] = Math.Round(P(warm) - P(fromDir), 3),
            };
            Console.WriteLine($"  {name}: cold {P(cold):F1} (pull ~{P(cold) - P(fromDir):F1}), warm {P(warm):F1} (pull ~{P(warm) - P(fromDir):F1})");
        }
        return result;
    }

    private static double P(List<double> xs) { var s = xs.Order().ToList(); return s[s.Count / 2]; }
}
