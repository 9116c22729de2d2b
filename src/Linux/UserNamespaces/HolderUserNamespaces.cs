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
/// its own (<see cref="NamespaceOwners"/>), which the holder takes as its uid before it unshares.</summary>
public sealed class HolderUserNamespaces(string holderBinary, NamespaceOwners? owners = null) : IUserNamespaces
{
    private readonly NamespaceOwners _owners = owners ?? new NamespaceOwners();

    public const string HolderCommand = "ns-holder";

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(10);

    public async Task<IUserNamespaceHolder> CreateAsync(string handle, IdMapping mapping, CancellationToken ct)
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
        var holder = new Holder(control, run, mapping, owner);
        try
        {
            holder.Pid = await ReadPidAsync(control, ct).ConfigureAwait(false);
            if (holder.Pid <= 0)
            {
                var result = await run.ConfigureAwait(false);
                throw new UserNamespaceException($"user namespace of {handle}: {holderBinary} {HolderCommand} exited {result.ExitCode}: " +
                    (result.Stderr.Trim() is { Length: > 0 } why ? why : "it said nothing (is the agent binary a build with the holder?)"));
            }
            WriteMap(holder.Pid, "uid_map", IdMapping.ProcFormat(mapping.Uids));
            WriteMap(holder.Pid, "gid_map", IdMapping.ProcFormat(mapping.Gids));
            return holder;
        }
        catch (Exception e)
        {
            await holder.DisposeAsync().ConfigureAwait(false);
            if (e is UserNamespaceException or OperationCanceledException) throw;
            throw new UserNamespaceException($"user namespace of {handle} ({mapping}): {e.Message}", e);
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

    private sealed class Holder(Socket control, Task<CommandResult> run, IdMapping mapping, uint owner) : IUserNamespaceHolder
    {
        public IdMapping Mapping { get; } = mapping;
        public uint Owner { get; } = owner;
        public int Pid { get; set; }
        public string UserNamespacePath => $"/proc/{Pid}/ns/user";

        private int _disposed;

        /// <summary>Closing our end is the holder's signal to exit; it is reaped before this returns.</summary>
        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            control.Dispose();
            if (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false) == run) return;
            using (var pidfd = Pid > 0 ? Sys.PidfdOpen(Pid) : null)
                if (pidfd is not null) Sys.PidfdSendSignal(pidfd, LibC.SIGKILL);
            await run.ConfigureAwait(false);
        }
    }
}
