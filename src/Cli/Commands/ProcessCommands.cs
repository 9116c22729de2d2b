using Garden.Cli.Args;
using Garden.Protocol.Api;

namespace Garden.Cli.Commands;

/// <summary>run, attach, signal.</summary>
internal static class ProcessCommands
{
    public static async Task<int> RunAsync(CliContext ctx, RunCommand cmd)
    {
        using var call = ctx.Client.Run();
        var first = new RunRequest { Handle = cmd.Handle, Spec = Spec(cmd), Detach = cmd.Detach };
        if (!cmd.Tty || cmd.Detach)
            return await new ProcessStreamer(ctx.Output).StreamAsync(call, first, stdin => new RunRequest { Stdin = stdin }, cmd.Detach);

        // A terminal passes through: raw mode while the process runs, and its window size follows ours (SIGWINCH).
        if (OperatingSystem.IsWindows()) throw new CliException("--tty needs a POSIX terminal");
        string? processId = null;
        using var raw = Terminal.RawStdin();
        using var winch = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGWINCH, sig =>
        {
            sig.Cancel = true;
            if (processId is null) return;
            var (rows, cols) = Terminal.WindowSize();
            _ = ctx.Client.SetTtyAsync(new SetTtyRequest { Handle = cmd.Handle, ProcessId = processId, Size = new TtySpec { Rows = rows, Cols = cols } })
                .ResponseAsync.ContinueWith(_ => { });
        });
        return await new ProcessStreamer(ctx.Output)
            .StreamAsync(call, first, stdin => new RunRequest { Stdin = stdin }, detach: false, started: id => processId = id);
    }

    internal static ProcessSpec Spec(RunCommand cmd)
    {
        var spec = new ProcessSpec
        {
            Id = cmd.Id ?? "",
            Path = cmd.Path,
            Dir = cmd.Dir ?? "",
            User = cmd.User ?? "",
            Image = cmd.Image ?? "",
        };
        if (cmd.PeaMemory is { } memory) spec.PeaLimits = new PeaLimits { MemoryBytes = memory };
        spec.Args.Add(cmd.Args);
        spec.Env.Add(cmd.Env);
        spec.Rlimits.Add(cmd.Rlimits.Select(r => new Rlimit { Name = r.Name, Soft = r.Soft, Hard = r.Hard }));
        if (cmd.Tty)
        {
            var (rows, cols) = Terminal.WindowSize();
            spec.Tty = new TtySpec { Rows = rows, Cols = cols };
        }
        return spec;
    }

    public static async Task<int> AttachAsync(CliContext ctx, AttachCommand cmd)
    {
        using var call = ctx.Client.Attach();
        var first = new AttachRequest { Handle = cmd.Handle, ProcessId = cmd.ProcessId, FromOffset = cmd.FromOffset };
        return await new ProcessStreamer(ctx.Output)
            .StreamAsync(call, first, stdin => new AttachRequest { Stdin = stdin }, detach: false);
    }

    public static async Task<int> SignalAsync(CliContext ctx, SignalCommand cmd)
    {
        await ctx.Client.SignalAsync(new SignalRequest { Handle = cmd.Handle, ProcessId = cmd.ProcessId, Signal = cmd.Signal });
        return 0;
    }
}
