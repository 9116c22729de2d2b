using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Garden.Testing;

/// <summary>What a test needs of the machine beyond the SDK. A test that needs neither is a unit test (`make unit`).</summary>
[Flags]
public enum Needs
{
    Nothing = 0,

    /// <summary>Root on the real kernel: cgroups, mounts, loop devices, namespaces, iptables.</summary>
    Root = 1,

    /// <summary>What `make build` and `make install` put in place: gardend, the agent and the CLI in out/, the default
    /// rootfs, runc.</summary>
    Install = 2,

    /// <summary>A cgroup v1 host (tests of the v1 files themselves; v2 is tested against a fake cgroupfs).</summary>
    CgroupV1 = 4,
}

/// <summary>Decides whether the machine has what a test needs, and says what is missing.</summary>
public static class Gate
{
    /// <summary>The trait every gated test carries, one value per need ("root", "install"): `make unit` runs the tests
    /// with neither (<c>--filter "Needs!=root&amp;Needs!=install"</c>).</summary>
    public const string Trait = "Needs";

    public static bool IsRoot => Environment.IsPrivilegedProcess;

    /// <summary>Why the test cannot run here (for its skip), or null when it can.</summary>
    public static string? Unmet(Needs needs)
    {
        if (needs.HasFlag(Needs.Root) && !IsRoot)
            return "needs root (the real kernel: cgroups, mounts, namespaces); run as root, as `make test` does, or `make unit` for the tests that need none";
        if (needs.HasFlag(Needs.CgroupV1) && HostCgroups.Unified)
            return "needs a cgroup v1 host (this one is cgroup v2: the v2 layout is tested against a fake cgroupfs and by the cgroup contract)";
        if (needs.HasFlag(Needs.Install))
            foreach (var (what, present, how) in Installed())
                if (!present)
                    return $"needs an install: {what} is missing (run `{how}`, as `make test` does)";
        return null;
    }

    private static IEnumerable<(string What, bool Present, string How)> Installed()
    {
        string InRepo(params string[] parts) => Path.Combine([TestPaths.RepoRoot, .. parts]);
        var agent = Environment.GetEnvironmentVariable("GARDEN_AGENT_BIN") ?? InRepo("out", "bin", "garden-agent");
        var cli = Environment.GetEnvironmentVariable("GARDEN_CLI_BIN") ?? InRepo("out", "bin", "garden");
        var gardend = InRepo("out", "gardend", "gardend.dll");
        var rootfs = Environment.GetEnvironmentVariable("GARDEN_TEST_ROOTFS") ?? TestPaths.InstalledRootfs;
        yield return (agent, File.Exists(agent), "make build");
        yield return (cli, File.Exists(cli), "make build");
        yield return (gardend, File.Exists(gardend), "make build");
        yield return ($"the default rootfs {rootfs}", Directory.Exists(Path.Combine(rootfs, "bin")), "make install");
        yield return ("runc", OnPath("runc"), "make deps");
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Any(d => File.Exists(Path.Combine(d, program)));

    /// <summary>What the test method, its class (markers on the class itself or a base) and its assembly say it needs.</summary>
    internal static Needs Of(ITestMethod method, IAttributeInfo? fact)
    {
        var needs = fact?.GetNamedArgument<Needs>(nameof(GatedFactAttribute.Needs)) ?? Needs.Nothing;
        foreach (var marker in method.TestClass.Class.GetCustomAttributes(typeof(RequiresAttribute))
                     .Concat(method.TestClass.Class.Assembly.GetCustomAttributes(typeof(RequiresAttribute))))
            needs |= marker.GetNamedArgument<Needs>(nameof(RequiresAttribute.Needs));
        for (var type = method.TestClass.Class.ToRuntimeType()?.BaseType; type is not null; type = type.BaseType)
            foreach (var marker in type.GetCustomAttributes(typeof(RequiresAttribute), inherit: false).Cast<RequiresAttribute>())
                needs |= marker.Needs;
        return needs;
    }

    internal static IEnumerable<KeyValuePair<string, string>> TraitsOf(Needs needs)
    {
        if (needs.HasFlag(Needs.Root)) yield return new(Trait, "root");
        if (needs.HasFlag(Needs.Install)) yield return new(Trait, "install");
    }
}

/// <summary>A [Fact] that runs only where the machine has what it needs (<see cref="Needs"/>, and what a
/// <see cref="RequiresAttribute"/> on its class says): elsewhere it is skipped, saying what is missing. A contract's
/// test body carries this one: the real subject's class says what it needs, the fake's needs nothing.</summary>
[XunitTestCaseDiscoverer("Garden.Testing.GatedFactDiscoverer", "Garden.Testing")]
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
[AttributeUsage(AttributeTargets.Method)]
public class GatedFactAttribute : FactAttribute, ITraitAttribute
{
    public Needs Needs { get; set; }
}

/// <summary>A [Theory] gated like <see cref="GatedFactAttribute"/>.</summary>
[XunitTestCaseDiscoverer("Garden.Testing.GatedTheoryDiscoverer", "Garden.Testing")]
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
[AttributeUsage(AttributeTargets.Method)]
public class GatedTheoryAttribute : TheoryAttribute, ITraitAttribute
{
    public Needs Needs { get; set; }
}

/// <summary>A test that needs root (the real kernel), and nothing built or installed.</summary>
[XunitTestCaseDiscoverer("Garden.Testing.GatedFactDiscoverer", "Garden.Testing")]
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
public sealed class RootFactAttribute : GatedFactAttribute
{
    public RootFactAttribute() => Needs = Needs.Root;
}

[XunitTestCaseDiscoverer("Garden.Testing.GatedTheoryDiscoverer", "Garden.Testing")]
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
public sealed class RootTheoryAttribute : GatedTheoryAttribute
{
    public RootTheoryAttribute() => Needs = Needs.Root;
}

/// <summary>A test that needs an install (the built binaries, the default rootfs, runc) and, unless
/// <see cref="Root"/> is false, root.</summary>
[XunitTestCaseDiscoverer("Garden.Testing.GatedFactDiscoverer", "Garden.Testing")]
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
public sealed class InstallFactAttribute : GatedFactAttribute
{
    public InstallFactAttribute() => Needs = Needs.Install | Needs.Root;

    public bool Root
    {
        get => Needs.HasFlag(Needs.Root);
        set => Needs = value ? Needs | Needs.Root : Needs & ~Needs.Root;
    }
}

[XunitTestCaseDiscoverer("Garden.Testing.GatedTheoryDiscoverer", "Garden.Testing")]
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
public sealed class InstallTheoryAttribute : GatedTheoryAttribute
{
    public InstallTheoryAttribute() => Needs = Needs.Install | Needs.Root;
}

/// <summary>What every test of a class needs (for the gated tests of a contract: on its real subject's class).</summary>
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Assembly, Inherited = false)]
public class RequiresAttribute(Needs needs) : Attribute, ITraitAttribute
{
    public Needs Needs { get; } = needs;
}

/// <summary>Every test of the class needs root.</summary>
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
public sealed class RequiresRootAttribute() : RequiresAttribute(Needs.Root);

/// <summary>Every test of the class needs root and an install.</summary>
[TraitDiscoverer("Garden.Testing.NeedsTraitDiscoverer", "Garden.Testing")]
public sealed class RequiresInstallAttribute() : RequiresAttribute(Needs.Root | Needs.Install);

/// <summary>The "Needs" traits of a gated test or of a <see cref="RequiresAttribute"/>.</summary>
public sealed class NeedsTraitDiscoverer : ITraitDiscoverer
{
    public IEnumerable<KeyValuePair<string, string>> GetTraits(IAttributeInfo traitAttribute) =>
        Gate.TraitsOf(traitAttribute.GetNamedArgument<Needs>("Needs"));
}

/// <summary>Runs a gated fact as xunit would, or reports it skipped with what the machine lacks.</summary>
public sealed class GatedFactDiscoverer(IMessageSink diagnostics) : IXunitTestCaseDiscoverer
{
    private readonly FactDiscoverer _fact = new(diagnostics);

    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions options, ITestMethod method, IAttributeInfo fact) =>
        Gate.Unmet(Gate.Of(method, fact)) is { } why
            ? [new SkippedTestCase(diagnostics, options.MethodDisplayOrDefault(), options.MethodDisplayOptionsOrDefault(), method, why)]
            : _fact.Discover(options, method, fact);
}

/// <summary>Runs a gated theory as xunit would, or reports it skipped (once, without its data) with what the machine lacks.</summary>
public sealed class GatedTheoryDiscoverer(IMessageSink diagnostics) : IXunitTestCaseDiscoverer
{
    private readonly TheoryDiscoverer _theory = new(diagnostics);

    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions options, ITestMethod method, IAttributeInfo theory) =>
        Gate.Unmet(Gate.Of(method, theory)) is { } why
            ? [new SkippedTestCase(diagnostics, options.MethodDisplayOrDefault(), options.MethodDisplayOptionsOrDefault(), method, why)]
            : _theory.Discover(options, method, theory);
}

/// <summary>A test case reported as skipped, with the reason its gate gave (kept across xunit's serialization).</summary>
public sealed class SkippedTestCase : XunitTestCase
{
    private string _reason = "";

    [Obsolete("Called by the de-serializer; should only be called by deriving classes for de-serialization purposes")]
    public SkippedTestCase()
    {
    }

    public SkippedTestCase(IMessageSink diagnostics, TestMethodDisplay display, TestMethodDisplayOptions displayOptions, ITestMethod method, string reason)
        : base(diagnostics, display, displayOptions, method) => _reason = reason;

    protected override void Initialize()
    {
        base.Initialize();
        SkipReason = _reason;
    }

    public override void Serialize(IXunitSerializationInfo data)
    {
        base.Serialize(data);
        data.AddValue("GateReason", _reason);
    }

    public override void Deserialize(IXunitSerializationInfo data)
    {
        _reason = data.GetValue<string>("GateReason");
        base.Deserialize(data);
    }
}
