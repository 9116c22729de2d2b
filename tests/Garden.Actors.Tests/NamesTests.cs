using Akka.Actor;
using Xunit;

namespace Garden.Actors.Tests;

/// <summary>The one name validator: whole-string anchors, Akka's actor-name rules, and actor names that never throw.</summary>
public sealed class NamesTests
{
    [Theory]
    [InlineData("evil\n")]      // .NET's `$` matches before a final newline: this one got into journals
    [InlineData("evil\r\n")]
    [InlineData("\nevil")]
    [InlineData("ev\nil")]
    [InlineData("evil\0")]
    [InlineData("")]
    [InlineData("-dash")]
    [InlineData(".dot")]
    [InlineData("_under")]
    [InlineData("$akka")]
    [InlineData("a/b")]
    [InlineData("a b")]
    [InlineData("a~1")]
    [InlineData("a%41")]
    [InlineData("é")]
    [InlineData("..")]
    public void Names_that_are_not_whole_matches_are_refused(string name)
    {
        Assert.NotNull(Names.Problem(name));
        var e = Assert.Throws<GardenException>(() => Names.Validate("handle", name));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.StartsWith("handle: ", e.Message);
        Assert.DoesNotContain("\n", e.Message); // the name is shown escaped
    }

    [Theory]
    [InlineData("a")]
    [InlineData("web-1.prod_x")]
    [InlineData("0abc")]
    public void Valid_names_are_valid_actor_names_and_their_own_actor_name(string name)
    {
        Assert.Null(Names.Problem(name));
        Assert.True(ActorPath.IsValidPathElement(name));
        Assert.Equal(name, Names.ActorName(name));
    }

    [Fact]
    public void A_name_of_the_maximum_length_passes_and_one_more_does_not()
    {
        Assert.Null(Names.Problem(new string('a', Names.MaxLength)));
        Assert.Contains("max 128", Names.Problem(new string('a', Names.MaxLength + 1)));
    }

    [Fact]
    public void Every_string_has_an_actor_name_that_akka_accepts_and_no_two_share_one()
    {
        var random = new Random(7);
        var seen = new Dictionary<string, string>();
        var samples = new List<string> { "", "evil\n", "_evil%0A", "$x", "~", "%", "%%", "a/b", "..", new string('\n', 300), "é", "\uD800" };
        for (var i = 0; i < 5000; i++)
            samples.Add(new string(Enumerable.Range(0, random.Next(0, 12)).Select(_ => (char)random.Next(0, 0x3000)).ToArray()));
        foreach (var s in samples.Distinct())
        {
            var name = Names.ActorName(s);
            Assert.True(ActorPath.IsValidPathElement(name), $"{Names.Quote(s)} -> {name}");
            if (Names.Problem(s) is not null) Assert.StartsWith("_", name); // never a valid name, so never another's
            if (seen.TryGetValue(name, out var other) && System.Text.Encoding.UTF8.GetBytes(other).SequenceEqual(System.Text.Encoding.UTF8.GetBytes(s)))
                continue; // lone surrogates share their UTF-8 replacement bytes
            Assert.False(seen.ContainsKey(name), $"{Names.Quote(s)} and {Names.Quote(seen.GetValueOrDefault(name) ?? "")} share {name}");
            seen[name] = s;
        }
        Assert.Equal("_evil%0A", Names.ActorName("evil\n"));
    }

    [Fact]
    public void Quote_escapes_what_a_log_line_must_not_carry()
    {
        Assert.Equal("\"evil\\n\"", Names.Quote("evil\n"));
        Assert.Equal("\"a\\u0000\\\"b\\\\\"", Names.Quote("a\0\"b\\"));
    }
}
