namespace Garden.Linux.Runtime;

public enum OciStatus { Creating, Created, Running, Paused, Stopped }

public sealed record OciState(string Id, OciStatus Status, int Pid, string Bundle);

/// <summary>The OCI runtime (runc): starts a container from a bundle and manages its init.</summary>
public interface IOciRuntime
{
    /// <summary>Writes the bundle and starts the container (`runc run --detach`) with the agent as its init, listening
    /// on spec.AgentSocketPath (bound here, before the agent starts, so connections queue until it accepts).</summary>
    Task RunAsync(BundleSpec spec, string bundleDir, CancellationToken ct);

    /// <summary>Takes over a container an earlier daemon started from <paramref name="bundleDir"/> (after a restart).</summary>
    void Adopt(string id, string bundleDir);

    /// <summary>The container's state, or null if the runtime does not know it.</summary>
    Task<OciState?> StateAsync(string id, CancellationToken ct);

    /// <summary>Sends a signal to the init (or every process with <paramref name="all"/>); a stopped or unknown container is not an error.</summary>
    Task KillAsync(string id, int signal, bool all, CancellationToken ct);

    /// <summary>Waits until the init has exited; false on timeout.</summary>
    Task<bool> WaitStoppedAsync(string id, TimeSpan timeout, CancellationToken ct);

    /// <summary>Deletes a stopped container's runtime state and cgroup; an unknown container is not an error.</summary>
    Task DeleteAsync(string id, CancellationToken ct);
}

/// <summary>The OCI runtime failed; the message holds what it said.</summary>
public sealed class OciRuntimeException(string operation, string id, string detail)
    : Exception($"runc {operation} {id}: {detail}")
{
    public string Detail { get; } = detail;
}
