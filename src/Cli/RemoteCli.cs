using System.Diagnostics;
using Garden.Cli.Args;
using Grpc.Core;

namespace Garden.Cli;

/// <summary>Akka.Remote addresses (akka.tcp://garden@HOST:PORT). Akka.NET needs the JIT (reflection, dynamic code), so the
/// NativeAOT `garden` hands such a command to the JIT build (src/Cli/Jit: this assembly run on the JIT, with the Akka.Remote
/// client set in <see cref="ConnectAkka"/>), installed next to it: out/cli-jit/garden-jit.dll, or
/// PREFIX/lib/garden-actors/cli-jit/garden-jit.dll. The commands are the same code on both: only the CallInvoker under the
/// generated client differs. (Tried first: src/Cli/Jit published with
/// PublishAot=true builds, with trim/AOT warnings from Akka, and fails at the first ActorSystem with "'akka.actor.provider'
/// is not a valid type name: 'Akka.Remote.RemoteActorRefProvider, Akka.Remote'" — Akka resolves its HOCON type names,
/// serializers and extensions by reflection.)</summary>
internal static class RemoteCli
{
    public const string JitEnvironmentVariable = "GARDEN_CLI_JIT";

    /// <summary>The Akka.Remote connection for an akka.tcp:// address: set by the JIT build (src/Cli/Jit) before it runs the
    /// command; null in the NativeAOT binary, which references no Akka.</summary>
    public static Func<GardenAddress, Connection>? ConnectAkka { get; set; }

    public static bool Supported => ConnectAkka is not null;

    /// <summary>The invoker for the address: gRPC over the socket, or (JIT build only) Akka.Remote.</summary>
    public static Connection CreateInvoker(GardenAddress address)
    {
        if (address.IsAkka && ConnectAkka is not null) return ConnectAkka(address);
        var channel = GardenChannel.Create(address);
        return new Connection(channel.CreateCallInvoker(), channel.Dispose);
    }

    public sealed class Connection(CallInvoker invoker, Action dispose) : IDisposable
    {
        public CallInvoker Invoker { get; } = invoker;
        public void Dispose() => dispose();
    }

    /// <summary>Runs the JIT build with the same arguments and the same stdin/stdout/stderr; its exit code is ours.</summary>
    public static int RunJitBuild(string[] args, Output output)
    {
        var dll = FindJitBuild();
        if (dll is null)
        {
            output.Error("Akka.Remote addresses need the JIT build of garden (cli-jit/garden-jit.dll next to this binary, " +
                         $"or {JitEnvironmentVariable}=/path/to/garden-jit.dll): run `make build` / `make install`");
            return Cli.Failure;
        }
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var child = Process.Start(psi)!;
            // Ctrl-C reaches the child through the terminal's process group; we only wait for it.
            Console.CancelKeyPress += (_, e) => e.Cancel = true;
            child.WaitForExit();
            return child.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            output.Error($"cannot start `dotnet {dll}` for an Akka.Remote address: {e.Message}");
            return Cli.Failure;
        }
    }

    private static string? FindJitBuild()
    {
        if (Environment.GetEnvironmentVariable(JitEnvironmentVariable) is { Length: > 0 } env) return env;
        var exe = Environment.ProcessPath is { } p ? Path.GetDirectoryName(Path.GetFullPath(p)) : AppContext.BaseDirectory;
        if (exe is null) return null;
        foreach (var candidate in new[]
                 {
                     Path.Combine(exe, "..", "cli-jit", "garden-jit.dll"),                // out/bin/garden → out/cli-jit
                     Path.Combine(exe, "..", "lib", "garden-actors", "cli-jit", "garden-jit.dll"), // PREFIX/bin → PREFIX/lib/garden-actors
                 })
            if (File.Exists(candidate)) return Path.GetFullPath(candidate);
        return null;
    }
}
