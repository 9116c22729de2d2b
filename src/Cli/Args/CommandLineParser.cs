using System.CommandLine;
using System.CommandLine.Parsing;

namespace Garden.Cli.Args;

/// <summary>Turns argv into an <see cref="Invocation"/> with <see cref="Syntax"/>. Throws <see cref="UsageException"/> with one
/// line naming what was wrong. Besides System.CommandLine's own rules: a word before "--" that looks like a flag is never
/// taken as a positional or as a flag's value (use --flag=-value), and run's command starts at the first word after
/// HANDLE that is not one of run's flags.</summary>
public static class CommandLineParser
{
    /// <summary>No response files (an argument "@x" is just that), no bundling of short flags.</summary>
    internal static readonly ParserConfiguration Configuration = new() { ResponseFileTokenReplacer = null, EnablePosixBundling = false };

    public static Invocation Parse(IReadOnlyList<string> args)
    {
        var argv = SeparateRunCommand(args);
        var result = Syntax.Root.Parse(argv, Configuration);
        var command = result.CommandResult.Command;
        var name = command == Syntax.Root ? null : command.Name;
        // --help anywhere before "--" asks for the command's help, whatever else is there.
        if (result.GetResult(Syntax.Help) is not null) return new(new(null, result.GetValue(Syntax.Json)), new HelpCommand(name));
        if (result.GetValue(Syntax.Version)) return new(new(null, result.GetValue(Syntax.Json)), new VersionCommand());
        if (Problem(result, argv) is { } problem) throw new UsageException(problem, name);
        try
        {
            return new(new(result.GetValue(Syntax.Socket), result.GetValue(Syntax.Json)), ((GardenCommand)command).Bind(result));
        }
        catch (UsageException e) when (e.Command is null)
        {
            throw new UsageException(e.Message, name);
        }
    }

    /// <summary>The first thing wrong, in the order a reader would look: flags, the command, positionals, values.</summary>
    private static string? Problem(ParseResult result, IReadOnlyList<string> argv)
    {
        var command = result.CommandResult.Command;
        var root = command == Syntax.Root;

        // A switch given a value (--kill=yes): the tokenizer splits it in two, so look at the words as given.
        foreach (var word in argv.TakeWhile(a => a != "--"))
            if (word.StartsWith("--", StringComparison.Ordinal) && word.Contains('=')
                && Find(command, FlagName(word)) is { Arity.MaximumNumberOfValues: 0 } option)
                return $"flag {option.Name} takes no value (got '{word}')";

        // Words before "--" that look like flags: unknown flags, or flags given where a value was due.
        var values = new Dictionary<Token, Option>(ReferenceEqualityComparer.Instance);
        foreach (var option in OptionResults(result.RootCommandResult))
            foreach (var token in option.Tokens) values[token] = option.Option;
        Token? previous = null;
        foreach (var token in result.Tokens.TakeWhile(t => t.Type != TokenType.DoubleDash))
        {
            if (token.Type == TokenType.Argument && IsFlag(token.Value))
            {
                if (!values.TryGetValue(token, out var option))
                    return $"unknown flag '{FlagName(token.Value)}'" + (root ? "" : $" for '{command.Name}'");
                if (!GivenInline(previous, token, argv)) return $"flag {option.Name} needs a value";
            }
            previous = token;
        }

        if (result.UnmatchedTokens.FirstOrDefault() is { } extra)
            return root ? $"unknown command '{extra}' (run 'garden --help' for the list)" : $"{command.Name}: unexpected argument '{extra}'";

        foreach (var given in OptionResults(result.RootCommandResult).Where(o => !o.Implicit))
        {
            var max = given.Option.Arity.MaximumNumberOfValues;
            if (max == 1 && given.IdentifierTokenCount > 1) return $"flag {given.Option.Name} given more than once";
            if (max > 0 && given.Tokens.Count < given.IdentifierTokenCount) return $"flag {given.Option.Name} needs a value";
        }

        if (root) return "missing command (run 'garden --help' for the list)";
        foreach (var argument in command.Arguments)
            if ((result.GetResult(argument)?.Tokens.Count ?? 0) < argument.Arity.MinimumNumberOfValues)
                return $"{command.Name}: missing {argument.Name}";

        // What the value parsers said: each names the flag and the value.
        return result.Errors.FirstOrDefault()?.Message;
    }

    /// <summary>run HANDLE CMD ARGS...: CMD is the first word after HANDLE that is neither a flag nor a flag's value; a "--"
    /// goes before it so that everything from there on is the command's, its own flags included.</summary>
    private static IReadOnlyList<string> SeparateRunCommand(IReadOnlyList<string> args)
    {
        var i = SkipFlags(Syntax.Root, args, 0);
        if (i >= args.Count || args[i] != "run") return args;
        var run = Syntax.Root.Subcommands.Single(c => c.Name == "run");
        var positionals = 0;
        for (i = SkipFlags(run, args, i + 1); i < args.Count && args[i] != "--"; i = SkipFlags(run, args, i + 1))
            if (++positionals == 2) return [.. args.Take(i), "--", .. args.Skip(i)];
        return args;
    }

    /// <summary>The index of the first word from <paramref name="i"/> on that is not a flag of <paramref name="command"/>
    /// or its value.</summary>
    private static int SkipFlags(Command command, IReadOnlyList<string> args, int i)
    {
        for (; i < args.Count && IsFlag(args[i]); i++)
            if (!args[i].Contains('=') && Find(command, args[i]) is { Arity.MaximumNumberOfValues: > 0 }) i++;
        return i;
    }

    /// <summary>A flag of the command, or one of garden's global flags.</summary>
    private static Option? Find(Command command, string name) =>
        command.Options.Concat(Syntax.Root.Options.Where(o => o.Recursive))
            .FirstOrDefault(o => o.Name == name || o.Aliases.Contains(name));

    private static IEnumerable<OptionResult> OptionResults(CommandResult command)
    {
        foreach (var child in command.Children)
        {
            if (child is OptionResult option) yield return option;
            else if (child is CommandResult sub)
                foreach (var o in OptionResults(sub)) yield return o;
        }
    }

    /// <summary>Whether the value came as --flag=VALUE (or --flag:VALUE), where it may start with '-'.</summary>
    private static bool GivenInline(Token? flag, Token value, IReadOnlyList<string> argv) =>
        flag is { Type: TokenType.Option } && (argv.Contains($"{flag.Value}={value.Value}") || argv.Contains($"{flag.Value}:{value.Value}"));

    /// <summary>"-" alone is a positional (stdin by convention); anything else starting with "-" is a flag.</summary>
    private static bool IsFlag(string arg) => arg.Length > 1 && arg[0] == '-' && arg != "--";

    private static string FlagName(string arg)
    {
        int eq = arg.IndexOf('=');
        return eq > 2 ? arg[..eq] : arg;
    }
}
