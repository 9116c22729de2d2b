using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Garden.Actors;

public sealed record ContainerSpec(
    string Handle,
    string Rootfs,
    ImmutableArray<string> Env,
    ImmutableDictionary<string, string> Properties,
    bool Privileged);

public sealed record RlimitSpec(string Name, ulong Soft, ulong Hard);

public sealed record TtySize(uint Rows, uint Cols);

public sealed record ProcessSpec(
    string Id,
    string Path,
    ImmutableArray<string> Args,
    ImmutableArray<string> Env,
    string Dir,
    string User,
    ImmutableArray<RlimitSpec> Rlimits,
    TtySize? Tty);

public enum ContainerLifecycle { Creating, Active, Stopping, Stopped, Destroying, Destroyed, Broken }

/// <summary>Names: handles become hostnames, directory names and actor names; process ids become actor names.</summary>
public static partial class Names
{
    public const int MaxLength = 128;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex NamePattern();

    /// <summary>Null when valid, else why not.</summary>
    public static string? Problem(string name)
    {
        if (name.Length == 0) return "must not be empty";
        if (name.Length > MaxLength) return $"is {name.Length} characters long (max {MaxLength})";
        if (!NamePattern().IsMatch(name))
            return "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit";
        return null;
    }

    public static void Validate(string field, string name)
    {
        var problem = Problem(name);
        if (problem is not null) throw GardenException.Invalid(field, $"\"{name}\" {problem}");
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
