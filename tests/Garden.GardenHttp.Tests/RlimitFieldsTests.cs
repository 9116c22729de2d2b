using System.Reflection;
using System.Text.Json.Serialization;
using RlimitNames = Garden.Actors.RlimitNames;
using RlimitSpec = Garden.Actors.RlimitSpec;
using Garden.Host.GardenHttp;
using Xunit;

namespace Garden.GardenHttp.Tests;

/// <summary>Garden's process JSON names its rlimits as fields of garden.ResourceLimits; GardenConvert turns each into an
/// rlimit of the API by name, and the daemon admits the names of <see cref="RlimitNames.Known"/>. A field whose name the
/// daemon did not know would turn a valid Garden request into an error; one GardenConvert forgot would be dropped.</summary>
public sealed class RlimitFieldsTests
{
    [Fact]
    public void Every_rlimit_field_of_gardens_json_is_converted_under_a_name_the_daemon_admits()
    {
        var fields = typeof(ResourceLimits).GetProperties()
            .ToDictionary(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()!.Name, p => p);
        var limits = new ResourceLimits();
        var value = 100UL;
        foreach (var p in fields.Values) p.SetValue(limits, value++);

        var run = GardenConvert.ToRun("h", new ProcessSpec { Path = "/bin/true", Limits = limits });

        Assert.Equal(fields.Keys.Order(), run.Spec.Rlimits.Select(r => r.Name).Order());
        foreach (var r in run.Spec.Rlimits)
        {
            Assert.Null(RlimitNames.Problem(new RlimitSpec(r.Name, r.Soft, r.Hard)));
            Assert.Equal((ulong)fields[r.Name].GetValue(limits)!, r.Soft); // each field's own value, under its own name
            Assert.Equal(r.Soft, r.Hard);
        }
        // Garden's ResourceLimits has no rttime; every other name the daemon knows is a field.
        Assert.Equal(["rttime"], RlimitNames.Known.Except(fields.Keys));
    }
}
