using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Garden.Actors;

/// <summary>Names: handles become hostnames, directory names and actor names; process ids become actor names. One
/// validator for every entry (create, run, attach, signal, ...): the whole string must match (<c>\A...\z</c>: .NET's
/// <c>$</c> also matches before a final newline, which once let "evil\n" into the journal), and every valid name is a
/// valid Akka actor name.</summary>
public static partial class Names
{
    public const int MaxLength = 128;

    [GeneratedRegex(@"\A[A-Za-z0-9][A-Za-z0-9._-]*\z")]
    private static partial Regex NamePattern();

    /// <summary>Null when valid, else why not.</summary>
    public static string? Problem(string name)
    {
        if (name.Length == 0) return "must not be empty";
        if (name.Length > MaxLength) return $"is {name.Length} characters long (max {MaxLength})";
        if (!NamePattern().IsMatch(name) || !Akka.Actor.ActorPath.IsValidPathElement(name))
            return "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit";
        return null;
    }

    public static void Validate(string field, string name)
    {
        var problem = Problem(name);
        if (problem is not null) throw GardenException.Invalid(field, $"{Quote(name)} {problem}");
    }

    /// <summary>A name as a C#-style quoted string with control characters escaped (\n, \u0000), for error messages and
    /// logs: a name that is not valid may hold anything.</summary>
    public static string Quote(string name)
    {
        var b = new System.Text.StringBuilder(name.Length + 2).Append('"');
        foreach (var c in name)
            b.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        return b.Append('"').ToString();
    }

    /// <summary>An actor name for any string, never throwing: the name itself when it is valid, else "_" followed by its
    /// UTF-8 bytes with everything but letters, digits, '.' and '-' percent-encoded. A valid name starts with a letter or
    /// digit, so the two never meet, and the encoding is one-to-one. (A handle an earlier build let into the journal
    /// still gets an actor, which reports itself broken and can be destroyed.)</summary>
    public static string ActorName(string name)
    {
        if (Problem(name) is null) return name;
        var b = new System.Text.StringBuilder("_");
        foreach (var by in System.Text.Encoding.UTF8.GetBytes(name))
        {
            var c = (char)by;
            if (c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '.' or '-') b.Append(c);
            else b.Append('%').Append(by.ToString("X2"));
        }
        return b.ToString();
    }

    /// <summary>A fresh name: 11 lowercase letters and digits (hostname-safe).</summary>
    public static string Generate()
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        Span<char> chars = stackalloc char[11];
        for (var i = 0; i < chars.Length; i++) chars[i] = alphabet[RandomNumberGenerator.GetInt32(i == 0 ? 26 : alphabet.Length)];
        return new string(chars);
    }
}
