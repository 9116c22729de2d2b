using System.Net.Sockets;
using System.Text;
using Garden.Linux.Interop;
using Garden.Linux.Process;
using Tmds.Linux;

namespace Garden.Linux.UserNamespaces;

/// <summary>IUserNamespaces with a holder process: `garden-agent ns-holder` (native/nsholder.c, run before the .NET
/// runtime starts, since unshare(CLONE_NEWUSER) needs a single-threaded process) unshares a user and a network
/// namespace, writes its pid to fd 3 (one end of a socket pair) and waits there until gardend closes its end or dies.
/// gardend writes uid_map and gid_map from outside (as host root it may map any host id). Each namespace has an owner of
/// its own (<see cref="NamespaceOwners"/>), which the holder takes as its uid before it unshares.
/// <para>With <paramref name="spares"/> &gt; 0, that many holders are started ahead, their maps not yet written (a
/// namespace takes its maps once, any time before it is used: the mapping is the Create's), and one is taken by each
/// Create, which then only writes the maps. The spares are topped up in the background 20 ms after no Create holds a
/// holder any more (runc has joined the namespaces of each: the refill does not compete with the Creates' heavy part).
/// A spare is what a Create would have started, made earlier: a process of gardend that ends when gardend does (its
/// socket's end closes), so nothing of it outlives gardend or needs a journal. One that ended meanwhile is not handed
/// out. The first Create's end starts them (a daemon that makes no container has none).</para></summary>
public sealed class HolderUserNamespaces(string holderBinary, NamespaceOwners? owners = null, int spares = 0) : IUserNamespaces, IAsyncDisposable
{
    private readonly NamespaceOwners _owners = owners ?? new NamespaceOwners();
    private readonly System.Collections.Concurrent.ConcurrentQueue<Holder> _spares = new();
    private int _refilling, _disposed, _handedOut;

    public const string HolderCommand = "ns-holder";

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How long after the last Create let its holder go the spares are topped up.</summary>
    private static readonly TimeSpan RefillDelay = TimeSpan.FromMilliseconds(20);

    /// <summary>Spares ready now (for tests and the metrics).</summary>
    public int SparesReady => _spares.Count;

    /// <summary>The holder processes of the spares ready now (for tests).</summary>
    public IReadOnlyList<int> SparePids => [.. _spares.Select(h => h.Pid)];

    public async Task<IUserNamespaceHolder> CreateAsync(string handle, IdMapping mapping, CancellationToken ct)
    {
        while (_spares.TryDequeue(out var spare))
        {
            // one that died while it waited is let go, also when its exit was not seen yet and its maps then could not
            // be written (disposed by HandOutAsync): a spare is never why a Create fails (a holder of its own says why)
            if (spare.Alive)
                try
                {
                    return await HandOutAsync(spare, handle, mapping).ConfigureAwait(false);
                }
                catch (UserNamespaceException)
                {
                    continue;
                }
            await spare.DisposeAsync().ConfigureAwait(false);
        }
        // none ready (the first Create, or more at once than there are spares): its own holder, and spares for the next
        return await HandOutAsync(await StartAsync(handle, ct).ConfigureAwait(false), handle, mapping).ConfigureAwait(false);
    }

    /// <summary>A holder for a Create, its maps written: counted until the Create lets it go; when no Create holds one
    /// any more, the spares are topped up (not while a burst of Creates is still starting its containers: the refill
    /// would compete with them for the same cores).</summary>
    private async Task<Holder> HandOutAsync(Holder holder, string handle, IdMapping mapping)
    {
        try
        {
            holder.Map(mapping);
        }
        catch (Exception e)
        {
            await holder.DisposeAsync().ConfigureAwait(false);
            throw new UserNamespaceException($"user namespace of {handle} ({mapping}): {e.Message}", e);
        }
        Interlocked.Increment(ref _handedOut);
        holder.Released = () =>
        {
            if (Interlocked.Decrement(ref _handedOut) == 0) Refill();
        };
        return holder;
    }

    /// <summary>Ends the spares (gardend need not: they end with it) and starts no more.</summary>
    public async ValueTask DisposeAsync()
    {
        Volatile.Write(ref _disposed, 1);
        while (Volatile.Read(ref _refilling) != 0) await Task.Delay(5).ConfigureAwait(false);
        while (_spares.TryDequeue(out var spare)) await spare.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Tops the spares up to their number, one holder at a time, off the caller's path; a failure (logged by
    /// nobody: the next Create starts its own holder and reports why it cannot) stops this round.</summary>
    private void Refill()
    {
        if (spares <= 0 || Volatile.Read(ref _disposed) != 0 || Interlocked.CompareExchange(ref _refilling, 1, 0) != 0) return;
        _ = Task.Run(async () =>
        {
            var failed = false;
            try
            {
                // the Create that let its holder go still waits for its agent and writes its journal: not beside those
                await Task.Delay(RefillDelay).ConfigureAwait(false);
                // not while another Create starts its container (its release refills)
                while (_spares.Count < spares && Volatile.Read(ref _disposed) == 0 && Volatile.Read(ref _handedOut) == 0)
                    _spares.Enqueue(await StartAsync("a spare", CancellationToken.None).ConfigureAwait(false));
            }
            catch (Exception)
            {
                failed = true;
            }
            finally
            {
                Volatile.Write(ref _refilling, 0);
            }
            // one taken while this round ended, and given back already, is made up for now (after a dispose, Refill
            // starts nothing, and DisposeAsync, which waited for this round, ends what it enqueued)
            if (!failed && _spares.Count < spares && Volatile.Read(ref _handedOut) == 0) Refill();
        });
    }

    /// <summary>A holder that has unshared its namespaces; their maps are not written yet.</summary>
    private async Task<Holder> StartAsync(string handle, CancellationToken ct)
    {
        var owner = _owners.Next();
        var (mine, theirs) = Sys.SocketPair();
        var control = new Socket(new SafeSocketHandle(mine.DangerousGetHandle(), ownsHandle: true));
        mine.SetHandleAsInvalid();
        Task<CommandResult> run;
        using (theirs)
        {
            try
            {
                run = Command.RunAsync(holderBinary, [HolderCommand, owner.ToString()], new CommandOutput(ExtraFiles: [theirs]), CancellationToken.None);
            }
            catch (Exception e)
            {
                control.Dispose();
                throw new UserNamespaceException($"user namespace of {handle}: cannot start {holderBinary} {HolderCommand}: {e.Message}", e);
            }
        }
        var holder = new Holder(control, run, owner);
        try
        {
            holder.Pid = await ReadPidAsync(control, ct).ConfigureAwait(false);
            if (holder.Pid <= 0)
            {
                var result = await run.ConfigureAwait(false);
                throw new UserNamespaceException($"user namespace of {handle}: {holderBinary} {HolderCommand} exited {result.ExitCode}: " +
                    (result.Stderr.Trim() is { Length: > 0 } why ? why : "it said nothing (is the agent binary a build with the holder?)"));
            }
            return holder;
        }
        catch (Exception e)
        {
            await holder.DisposeAsync().ConfigureAwait(false);
            if (e is UserNamespaceException or OperationCanceledException) throw;
            throw new UserNamespaceException($"user namespace of {handle}: {e.Message}", e);
        }
    }

    /// <summary>The holder's "PID\n" once it has unshared; 0 when it exited first.</summary>
    private static async Task<int> ReadPidAsync(Socket control, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(ReadyTimeout);
        var buffer = new byte[32];
        var got = 0;
        try
        {
            while (got < buffer.Length)
            {
                var n = await control.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cts.Token).ConfigureAwait(false);
                if (n == 0) return 0;
                got += n;
                var text = Encoding.ASCII.GetString(buffer, 0, got);
                if (text.EndsWith('\n'))
                    return int.TryParse(text.AsSpan(0, text.Length - 1), out var pid) ? pid : throw new UserNamespaceException($"the holder said \"{text.Trim()}\", not its pid");
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new UserNamespaceException($"the namespace holder did not answer within {ReadyTimeout.TotalSeconds:0}s");
        }
        throw new UserNamespaceException("the namespace holder said too much");
    }

    /// <summary>uid_map and gid_map take the whole map in one write.</summary>
    private static void WriteMap(int pid, string file, string map)
    {
        var path = $"/proc/{pid}/{file}";
        using var fd = File.OpenHandle(path, FileMode.Open, FileAccess.Write);
        RandomAccess.Write(fd, Encoding.ASCII.GetBytes(map), 0);
    }

    private sealed class Holder(Socket control, Task<CommandResult> run, uint owner) : IUserNamespaceHolder
    {
        public IdMapping Mapping { get; private set; } = null!;
        public uint Owner { get; } = owner;
        public int Pid { get; set; }
        public string UserNamespacePath => $"/proc/{Pid}/ns/user";

        private int _disposed;

        /// <summary>Still waiting on its socket: its exit not seen (so not reaped either: its pid names it alone), and it
        /// still holds its network namespace (an exiting process lets its namespaces go before it is a zombie; its user
        /// namespace, held by its credentials, still opens until it is reaped). One killed after this check is as a
        /// Create's own holder killed during the Create: runc cannot join it and the Create fails.</summary>
        public bool Alive => !run.IsCompleted && Volatile.Read(ref _disposed) == 0 && HoldsNamespaces();

        private bool HoldsNamespaces()
        {
            try
            {
                if (new FileInfo($"/proc/{Pid}/ns/net").LinkTarget is null) return false;
                var stat = File.ReadAllText($"/proc/{Pid}/stat");
                return !stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }

        /// <summary>Writes the namespace's maps (once: the kernel refuses a second write).</summary>
        public void Map(IdMapping mapping)
        {
            WriteMap(Pid, "uid_map", IdMapping.ProcFormat(mapping.Uids));
            WriteMap(Pid, "gid_map", IdMapping.ProcFormat(mapping.Gids));
            Mapping = mapping;
        }

        /// <summary>Called once at the dispose of a holder handed to a Create (the spares' refill).</summary>
        public Action? Released { get; set; }

        /// <summary>Closing our end is the holder's signal to exit; it is reaped before this returns.</summary>
        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            control.Dispose();
            Released?.Invoke();
            if (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false) == run) return;
            using (var pidfd = Pid > 0 ? Sys.PidfdOpen(Pid) : null)
                if (pidfd is not null) Sys.PidfdSendSignal(pidfd, LibC.SIGKILL);
            await run.ConfigureAwait(false);
        }
    }
}
