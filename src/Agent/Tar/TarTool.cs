using Garden.Protocol.Agent;

namespace Garden.Agent.Tar;

/// <summary>
/// garden-agent stream-in DEST | stream-out PATH: the agent binary's file tools. The daemon runs them as ordinary processes of
/// the container (path /.garden/agent, as the requested user), so they work inside the container's root and mount namespace
/// with that user's rights: a path, `..` or symlink can only ever resolve inside the container. Exit codes are
/// <see cref="ToolExit"/>; the reason is one line on stderr.
/// </summary>
internal static class TarTool
{
    public static bool IsTool(string[] args) => args.Length > 0 && args[0] is "stream-in" or "stream-out";

    public static int Run(string[] args)
    {
        if (args.Length != 2 || args[1].Length == 0)
        {
            Console.Error.WriteLine("usage: garden-agent stream-in DEST-DIR < archive.tar | garden-agent stream-out PATH > archive.tar");
            return (int)ToolExit.ToolUsage;
        }
        try
        {
            if (args[0] == "stream-in")
            {
                using var stdin = Console.OpenStandardInput();
                new TarExtractor(args[1]).Extract(stdin);
            }
            else
            {
                using var stdout = Console.OpenStandardOutput();
                using var buffered = new BufferedStream(stdout, 256 * 1024);
                TarArchiver.Write(args[1], buffered);
                buffered.Flush();
            }
            return (int)ToolExit.ToolOk;
        }
        catch (ToolException e)
        {
            Console.Error.WriteLine(e.Message);
            return (int)e.Exit;
        }
        catch (IOException e) when (e.HResult == Tmds.Linux.LibC.ENOSPC || e.HResult == Tmds.Linux.LibC.EDQUOT)
        {
            Console.Error.WriteLine($"the container's disk is full: {e.Message}");
            return (int)ToolExit.ToolNoSpace;
        }
        catch (UnauthorizedAccessException e)
        {
            Console.Error.WriteLine($"permission denied: {e.Message}");
            return (int)ToolExit.ToolDenied;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{args[0]} failed: {e.Message}");
            return (int)ToolExit.ToolFailed;
        }
    }

    /// <summary>Rejects a path that climbs above the root with `..` (inside the container it would only mean "/", but
    /// it is a sign of a wrong path, so it is said clearly rather than quietly clamped).</summary>
    public static string CheckPath(string path, string what)
    {
        int depth = 0;
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == ".") continue;
            depth += part == ".." ? -1 : 1;
            if (depth < 0 && path.StartsWith('/'))
                throw new ToolException(ToolExit.ToolBadInput, $"{what} {path} climbs above the container's root with '..'");
        }
        if (path.Contains('\0')) throw new ToolException(ToolExit.ToolBadInput, $"{what} contains a NUL byte");
        return path;
    }

    public static long Nanos(DateTimeOffset t) => t.UtcTicks % TimeSpan.TicksPerSecond * 100;
}
