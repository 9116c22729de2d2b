using System.Collections.Immutable;
using Garden.Actors.Kernel;
using Garden.Protocol.Journal;

namespace Garden.Actors.Container;

/// <summary>What <see cref="ContainerState.Decide"/> made of a request or of an effect's outcome. The actor persists
/// <see cref="Events"/> (in order) and applies them; then it logs <see cref="Notes"/>, publishes <see cref="Publish"/>,
/// starts <see cref="Effect"/> off its thread, and answers with <see cref="Reply"/> or <see cref="Error"/> — unless the
/// asker <see cref="Await"/>s an effect, whose outcome answers it.</summary>
public sealed record Decision
{
    public static readonly Decision None = new();

    /// <summary>Not now: kept (stashed) until the container's phase changes.</summary>
    public static readonly Decision Later = new() { Stash = true };

    public static Decision Fail(GardenException error) => new() { Error = error };

    public static Decision Answer(object reply) => new() { Reply = reply };

    /// <summary>Runs <paramref name="effect"/>; its outcome answers the asker.</summary>
    public static Decision Run(Effect effect) => new() { Effect = effect, Await = true };

    /// <summary>Journals <paramref name="evt"/>, then answers <paramref name="reply"/>.</summary>
    public static Decision Journal(IJournalRecord evt, object reply) => new() { Events = [evt], Reply = reply };

    /// <summary>Taken, and handed on as it is (or as rewritten here) to the actor's process side (process requests, OOM
    /// kills): no state of the container changes.</summary>
    public static Decision HandOn(object command) => new() { Forward = command };

    public ImmutableArray<IJournalRecord> Events { get; init; } = [];

    public Effect? Effect { get; init; }

    /// <summary>The asker is answered by the outcome of <see cref="Effect"/> (or, without one, of the effect in flight).</summary>
    public bool Await { get; init; }

    /// <summary><see cref="Effect"/> starts while <see cref="Events"/> are being journaled, not after: it needs nothing
    /// of them, and its outcome is decided only once they are applied (the actor takes no message in between).</summary>
    public bool EffectBeside { get; init; }

    public object? Reply { get; init; }

    public GardenException? Error { get; init; }

    /// <summary>Container events (<c>ContainerEvent</c> kinds with their detail), published once the events are journaled.</summary>
    public ImmutableArray<(string Kind, string Detail)> Publish { get; init; } = [];

    public ImmutableArray<Note> Notes { get; init; } = [];

    public bool Stash { get; init; }

    public object? Forward { get; init; }
}

public enum NoteLevel { Info, Warning, Error }

/// <summary>A line for the container's log.</summary>
public readonly record struct Note(NoteLevel Level, string Text)
{
    public static Note Info(string text) => new(NoteLevel.Info, text);
    public static Note Warning(string text) => new(NoteLevel.Warning, text);
    public static Note Error(string text) => new(NoteLevel.Error, text);
}

/// <summary>What a container's decisions take from the daemon's settings: where its root is mounted when the journal
/// does not say (builds before user namespaces mounted it elsewhere), and the rlimits every process gets unless its Run
/// names them.</summary>
public sealed record ContainerDefaults(string MountPoint, ImmutableArray<RlimitSpec> Rlimits)
{
    /// <summary>Where Info shows the root of a container taken from the warm pool: by its handle (a symlink to the entry's
    /// directory, made at take); null for every other container, whose root is by its handle already.</summary>
    public string? MountPointByHandle { get; init; }

    public static readonly ContainerDefaults None = new("", []);
}
