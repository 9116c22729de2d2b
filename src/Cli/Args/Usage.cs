using System.CommandLine;

namespace Garden.Cli.Args;

/// <summary>Help text, as System.CommandLine writes it from <see cref="Syntax"/>: the overview and one block per command.</summary>
public static class Usage
{
    public static IEnumerable<string> CommandNames => Syntax.Root.Subcommands.Select(c => c.Name);

    public static string Overview => For(null);

    /// <summary>The help of the command named <paramref name="topic"/>, or the overview when there is no such command.</summary>
    public static string For(string? topic)
    {
        var output = new StringWriter();
        string[] args = CommandNames.Contains(topic) ? [topic!, "--help"] : ["--help"];
        Syntax.Root.Parse(args, CommandLineParser.Configuration).Invoke(new InvocationConfiguration { Output = output });
        return output.ToString().TrimEnd();
    }
}
