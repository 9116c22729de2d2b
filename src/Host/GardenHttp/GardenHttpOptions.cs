namespace Garden.Host.GardenHttp;

/// <summary>The bounds of the Garden HTTP server. Garden's Go client sets no timeouts of its own, keeps a Run's
/// connections open for the life of the process and may stream a tar in slowly, so nothing here limits how long a
/// request may legitimately take: only how long a client may take to *say* what it wants, and how much it may make
/// the server hold.</summary>
public sealed record GardenHttpOptions
{
    /// <summary>Connections served at once; one more is answered 503 and closed. A Run holds three (its own, stdout,
    /// stderr) for the life of the process.</summary>
    public int MaxConnections { get; init; } = 1024;

    /// <summary>Request line plus headers; beyond it 431.</summary>
    public int MaxRequestHeadBytes { get; init; } = 64 * 1024;

    /// <summary>Time from accepting a connection to the end of its request head; then 408 and close (a client that
    /// opens connections and sends a few bytes a minute holds no more than this each).</summary>
    public TimeSpan RequestHeadTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>A JSON request body (a ContainerSpec with its env, a ProcessSpec ...); beyond it 413.</summary>
    public int MaxJsonBodyBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Time to receive a whole JSON body once the head has arrived; then 408.</summary>
    public TimeSpan JsonBodyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>StreamIn's tar may arrive as slowly as the client likes, but not stop: after this long without a byte
    /// the upload is abandoned (the backend sees the archive end early).</summary>
    public TimeSpan StreamBodyIdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>One line of newline-delimited JSON from a Run/Attach client (a stdin chunk, a signal, a resize). Go's
    /// client sends at most 32 KiB of stdin per line, six times that once escaped.</summary>
    public int MaxPayloadLineBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Stdin a client may send ahead of what the process has read: the connection's payloads are read on, so
    /// that a signal is not stuck behind stdin the process does not read, until this much is waiting.</summary>
    public int MaxPendingStdinBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Output of one stream (stdout or stderr of one Run or Attach) held for a stdout/stderr request that has
    /// not arrived yet; what does not fit is dropped, as guardian drops it. Once that request is being served the
    /// process's output waits for the client instead (nothing is dropped).</summary>
    public int OutputBufferBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>How long after its Run/Attach connection ended a stream id still answers a late stdout/stderr request
    /// with what was buffered (guardian: one minute).</summary>
    public TimeSpan StreamRetention { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>After the last byte of an answer the server stops sending and reads (and discards) what the client still
    /// sends, until it closes or this long: closing with unread bytes would make the kernel reset the connection, and a
    /// reset can destroy the answer before the client has read it (an exit status followed by stdin still in flight).</summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The most a lingering close reads and discards.</summary>
    public long MaxLingerBytes { get; init; } = 64 * 1024 * 1024;
}
