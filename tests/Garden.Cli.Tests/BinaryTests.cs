using System.Diagnostics;
using Garden.Testing;

namespace Garden.Cli.Tests;

/// <summary>Runs the published NativeAOT binary: `dotnet publish src/Cli/Garden.Cli.csproj -c Release -o out/bin`.</summary>
public class BinaryTests
{
    private static string Binary()
    {
        var fromEnv = Environment.GetEnvironmentVariable("GARDEN_CLI_BIN");
        if (!string.IsNullOrEmpty(fromEnv))
        {
            Assert.True(File.Exists(fromEnv), $"GARDEN_CLI_BIN={fromEnv} does not exist");
            return fromEnv;
        }
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props"))) dir = dir.Parent;
        Assert.True(dir is not null, $"no Directory.Packages.props above {AppContext.BaseDirectory}: cannot find the repo root");
        var path = Path.Combine(dir!.FullName, "out", "bin", "garden");
        Assert.True(File.Exists(path),
            $"{path} is missing: publish it first with `dotnet publish src/Cli/Garden.Cli.csproj -c Release -o out/bin` " +
            "(or point GARDEN_CLI_BIN at a garden binary)");
        return path;
    }

    private static (int Code, string Stdout, string Stderr, TimeSpan Elapsed) Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Binary())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("GARDEN_ADDRESS");
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(30_000), $"garden {string.Join(' ', args)} did not exit within 30 s");
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result, sw.Elapsed);
    }

    [InstallFact(Root = false)]
    public void Version_starts_and_exits_zero()
    {
        var r = Run("--version");
        Assert.Equal(0, r.Code);
        Assert.StartsWith("garden ", r.Stdout);
        Assert.Equal("", r.Stderr);
    }

    [InstallFact(Root = false)]
    public void Unreachable_daemon_is_one_line_and_exit_1()
    {
        var r = Run("--socket", "/nonexistent/x.sock", "ping");
        Assert.Equal(1, r.Code);
        Assert.Contains("cannot reach gardend at /nonexistent/x.sock", r.Stderr);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
        Assert.Equal("", r.Stdout);
    }

    [InstallFact(Root = false)]
    public void Unreachable_daemon_for_run_exits_125()
    {
        var r = Run("--socket", "/nonexistent/x.sock", "run", "h", "--", "true");
        Assert.Equal(125, r.Code);
        Assert.Contains("cannot reach gardend", r.Stderr);
    }

    [InstallFact(Root = false)]
    public void Bad_usage_exits_2_naming_the_flag()
    {
        var r = Run("create", "--bogus");
        Assert.Equal(2, r.Code);
        Assert.Contains("'--bogus'", r.Stderr);
        Assert.Equal(125, Run("run", "h", "--bogus", "--", "true").Code);
    }

    [InstallFact(Root = false)]
    public void Help_lists_the_commands()
    {
        var r = Run("--help");
        Assert.Equal(0, r.Code);
        foreach (var c in new[] { "ping", "capacity", "create", "list", "info", "destroy", "stop", "run", "attach", "signal", "property", "net-in", "net-out" })
            Assert.Contains(c, r.Stdout);
    }
}
