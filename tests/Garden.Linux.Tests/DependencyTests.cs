using System.Reflection;
using System.Text.Json;
using System.Xml.Linq;
using Garden.Testing;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>The assembly graph follows dependencies: the effects layer, the agent's protocol, the API client and the two
/// NativeAOT programs carry no Akka and no ASP.NET; each source file and each .proto is compiled by one project, the one
/// whose directory holds it (no linked files, no schema compiled twice).</summary>
public sealed class DependencyTests
{
    private static readonly string Root = TestPaths.RepoRoot;

    private static bool Forbidden(string name) =>
        name.StartsWith("Akka", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Microsoft.AspNetCore", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("Grpc.AspNetCore", StringComparison.OrdinalIgnoreCase);

    [Theory]
    [InlineData("src/Linux/Garden.Linux.csproj")]
    [InlineData("src/Protocol/Agent/Garden.Protocol.Agent.csproj")]
    [InlineData("src/Protocol/Api/Garden.Protocol.Api.csproj")]
    [InlineData("src/Agent/Garden.Agent.csproj")]
    [InlineData("src/Cli/Garden.Cli.csproj")]
    public void A_project_restores_no_akka_and_no_aspnet(string project)
    {
        var (libraries, frameworks) = Restored(project);
        Assert.DoesNotContain(libraries, Forbidden);
        Assert.Equal(new[] { "Microsoft.NETCore.App" }, frameworks);
    }

    [Theory]
    [InlineData("Garden.Linux")]
    [InlineData("Garden.Protocol.Agent")]
    [InlineData("Garden.Protocol.Api")]
    public void An_assembly_references_no_akka_and_no_aspnet(string assembly)
    {
        var references = ReferencedAssemblies(Assembly.Load(new AssemblyName(assembly)));
        Assert.Contains("Google.Protobuf", references); // the walk sees through to the packages
        Assert.DoesNotContain(references, Forbidden);
    }

    [Fact]
    public void No_project_compiles_a_file_outside_its_own_directory()
    {
        var found = new List<string>();
        foreach (var project in Projects())
        {
            var dir = Path.GetDirectoryName(project)!;
            foreach (var item in Items(project))
            {
                if (item.Attribute("Link") is not null)
                    found.Add($"{Relative(project)}: <{item.Name.LocalName} Include=\"{item.Attribute("Include")?.Value}\" Link=...>");
                if (item.Name.LocalName is "Compile" or "Protobuf")
                    foreach (var path in Includes(dir, item).Where(p => !p.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal)))
                        found.Add($"{Relative(project)}: <{item.Name.LocalName} Include=\"{item.Attribute("Include")!.Value}\"> is {Relative(path)}, outside {Relative(dir)}/");
            }
        }
        Assert.True(found.Count == 0, string.Join("\n", found));
    }

    [Fact]
    public void Each_proto_is_compiled_by_exactly_one_project()
    {
        var compiled = Projects().SelectMany(project => Items(project).Where(i => i.Name.LocalName == "Protobuf")
                .SelectMany(i => Includes(Path.GetDirectoryName(project)!, i)).Select(proto => (Proto: proto, Project: Relative(project))))
            .ToList();
        var twice = compiled.GroupBy(c => c.Proto).Where(g => g.Count() > 1)
            .Select(g => $"{Relative(g.Key)}: {string.Join(", ", g.Select(c => c.Project))}");
        Assert.True(!twice.Any(), "compiled twice:\n" + string.Join("\n", twice));
        var protos = Directory.EnumerateFiles(Path.Combine(Root, "src"), "*.proto", SearchOption.AllDirectories).Where(p => !InBuildOutput(p));
        Assert.Empty(protos.Except(compiled.Select(c => c.Proto)).Select(Relative)); // and none is left uncompiled
        Assert.Contains(compiled, c => c.Proto.EndsWith("garden.proto", StringComparison.Ordinal)); // the scan sees them
    }

    /// <summary>Every package and project a project's restore pulled in (obj/project.assets.json), and the shared frameworks
    /// it and they need.</summary>
    private static (List<string> Libraries, List<string> Frameworks) Restored(string project)
    {
        var assets = Path.Combine(Root, Path.GetDirectoryName(project)!, "obj", "project.assets.json");
        Assert.True(File.Exists(assets), $"{assets} is missing: build the solution first");
        using var doc = JsonDocument.Parse(File.ReadAllText(assets));
        var root = doc.RootElement;
        var libraries = root.GetProperty("libraries").EnumerateObject().Select(l => l.Name.Split('/')[0]).ToList();
        var ofLibraries = root.GetProperty("targets").EnumerateObject().SelectMany(t => t.Value.EnumerateObject())
            .SelectMany(l => l.Value.TryGetProperty("frameworkReferences", out var f) ? f.EnumerateArray().Select(e => e.GetString()!) : []);
        var ofProject = root.GetProperty("project").GetProperty("frameworks").EnumerateObject()
            .SelectMany(f => f.Value.TryGetProperty("frameworkReferences", out var r) ? r.EnumerateObject().Select(e => e.Name) : []);
        return (libraries, ofLibraries.Concat(ofProject).Distinct().Order().ToList());
    }

    /// <summary>The names of every assembly this one references, and those reference in turn (the runtime's own are
    /// listed, not followed).</summary>
    private static HashSet<string> ReferencedAssemblies(Assembly assembly)
    {
        static bool Runtime(string name) => name is "netstandard" or "mscorlib" or "System" || name.StartsWith("System.", StringComparison.Ordinal)
            || name.StartsWith("Microsoft.Win32.", StringComparison.Ordinal) || name.StartsWith("Microsoft.CSharp", StringComparison.Ordinal);
        var seen = new HashSet<string>();
        var pending = new Queue<Assembly>([assembly]);
        while (pending.TryDequeue(out var next))
            foreach (var reference in next.GetReferencedAssemblies())
            {
                if (!seen.Add(reference.Name!) || Runtime(reference.Name!) || Forbidden(reference.Name!)) continue;
                pending.Enqueue(Assembly.Load(reference));
            }
        return seen;
    }

    private static IEnumerable<string> Projects()
    {
        var projects = Directory.EnumerateFiles(Root, "*.csproj", SearchOption.AllDirectories).Where(p => !InBuildOutput(p)).ToList();
        Assert.Contains(projects, p => p.EndsWith("Garden.Linux.csproj", StringComparison.Ordinal));
        return projects;
    }

    /// <summary>bin/, obj/ and the repository's out/ (which holds the upgrade test's checkout of an earlier commit).</summary>
    private static bool InBuildOutput(string path) =>
        Path.GetRelativePath(Root, path).Split(Path.DirectorySeparatorChar) is var parts
        && (parts[0] == "out" || parts.Any(p => p is "bin" or "obj"));

    private static IEnumerable<XElement> Items(string project) =>
        XDocument.Load(project).Descendants().Where(e => e.Parent?.Name.LocalName == "ItemGroup");

    /// <summary>The full paths an item's Include names (a wildcard counts by where it points).</summary>
    private static IEnumerable<string> Includes(string dir, XElement item) =>
        (item.Attribute("Include")?.Value ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(i => Path.GetFullPath(Path.Combine(dir, i.Replace('\\', '/'))));

    private static string Relative(string path) => Path.GetRelativePath(Root, path);
}
