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
        return await new ProcessStreamer(ctx.Output)
            .StreamAsync(call, first, stdin => new RunRequest { Stdin = stdin }, cmd.Detach);
    }

    internal static ProcessSpec Spec(RunCommand cmd)
    {
        var spec = new ProcessSpec
        {
            Id = cmd.Id ?? "",
            Path = cmd.Path,
            Dir = cmd.Dir ?? "",
            User = cmd.User ?? "",
        };
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
