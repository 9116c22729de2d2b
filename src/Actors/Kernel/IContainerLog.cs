namespace Garden.Actors.Kernel;

/// <summary>The log of one container. Every line carries the container's handle (the implementation puts it there, so no
/// message spells it out), and each step is told as a pair: "X starting", then "X finished in N ms" or "X failed after
/// N ms: why" — one grep for the handle tells the story of one container.</summary>
public interface IContainerLog
{
    void Debug(string format, params object?[] args);

    void Info(string format, params object?[] args);

    void Warning(string format, params object?[] args);

    void Error(Exception? cause, string format, params object?[] args);
}
