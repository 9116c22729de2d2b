using System.Collections.Concurrent;
using System.Text;
using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Process;

/// <summary>One thread that follows every running command: its exit (a pidfd, readable once it has exited, then reaped)
/// and its captured stdout and stderr (non-blocking pipe reads), all in one epoll set. A command used to take three
/// threads of its own (two blocking pipe readers and a blocking waitpid), each made and ended per command: in a profile of
/// 10 Creates at once that thread churn (clone3, the new thread's start handshake spinning in sched_yield, its exit and
/// stack unmap) was ~10% of gardend's own CPU.</summary>
internal static class CommandWatch
{
    private const int ChunkBytes = 64 * 1024;

    private enum Followed { Stdout, Stderr, Exit }

    private sealed class Running(int pid, TaskCompletionSource<CommandResult> done)
    {
        public readonly int Pid = pid;
        public readonly TaskCompletionSource<CommandResult> Done = done;
        public readonly MemoryStream[] Output = [new(), new()];
        public readonly List<(ulong Tag, SafeFd Fd, Followed What)> Fds = new();
        public int ExitCode;
        public int Open; // fds still followed: the pidfd and each pipe until its end
    }

    private static readonly ConcurrentDictionary<ulong, (Running Command, Followed What)> Tags = new();
    private static readonly Lazy<SafeFd> Epoll = new(Start);
    private static long _nextTag;

    /// <summary>Follows a spawned child (our own, not yet reaped) and the read ends of its captured output (null: not
    /// captured); completes once it has exited and both pipes are at their end. Owns the fds from here.</summary>
    public static Task<CommandResult> Follow(int pid, SafeFd? stdout, SafeFd? stderr)
    {
        var done = new TaskCompletionSource<CommandResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var command = new Running(pid, done);
        var fds = new List<(SafeFd Fd, Followed What)>();
        if (stdout is not null) fds.Add((stdout, Followed.Stdout));
        if (stderr is not null) fds.Add((stderr, Followed.Stderr));
        var added = 0;
        try
        {
            // our own child, not yet reaped: its pid names it alone
            fds.Add((Sys.PidfdOpen(pid) ?? throw new LinuxException("pidfd_open", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), LibC.ESRCH), Followed.Exit));
            foreach (var (fd, what) in fds)
            {
                if (what != Followed.Exit) Sys.SetNonBlocking(fd);
                command.Fds.Add(((ulong)Interlocked.Increment(ref _nextTag), fd, what));
            }
            command.Open = fds.Count;
            // in the map before the kernel can report them; the watch thread reads Open and Output only after that
            foreach (var (tag, _, what) in command.Fds) Tags[tag] = (command, what);
            for (; added < fds.Count; added++) Sys.EpollAdd(Epoll.Value, command.Fds[added].Fd, command.Fds[added].Tag, $"command {pid}");
            return done.Task;
        }
        catch
        {
            // not followed: nothing of it stays behind (the child is reaped off this thread, it may still run)
            for (var i = 0; i < added; i++) Sys.EpollRemove(Epoll.Value, command.Fds[i].Fd, $"command {pid}");
            foreach (var (tag, _, _) in command.Fds) Tags.TryRemove(tag, out _);
            foreach (var (fd, _) in fds) fd.Dispose();
            _ = Task.Factory.StartNew(() => Sys.WaitForChild(pid), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            throw;
        }
    }

    private static SafeFd Start()
    {
        var epoll = Sys.EpollCreate();
        new Thread(() => Loop(epoll)) { IsBackground = true, Name = "commands" }.Start();
        return epoll;
    }

    private static void Loop(SafeFd epoll)
    {
        var ready = new EpollReady[64];
        var buffer = new byte[ChunkBytes];
        while (true)
        {
            var n = Sys.EpollWait(epoll, ready, -1);
            for (var i = 0; i < n; i++)
            {
                if (!Tags.TryGetValue(ready[i].Tag, out var followed)) continue;
                var (command, what) = followed;
                try
                {
                    if (what == Followed.Exit ? Reap(command) : Drain(command, what, buffer)) Close(epoll, command, ready[i].Tag);
                }
                catch (Exception e)
                {
                    command.Done.TrySetException(e); // first: the last Close below would complete it as a success
                    foreach (var (tag, _, _) in command.Fds.ToList())
                    {
                        try { Close(epoll, command, tag); }
                        catch (Exception) { /* its fd is closed: nothing more of it is followed; the thread goes on */ }
                    }
                }
            }
        }
    }

    /// <summary>Reads what the pipe holds; true at its end. A failed read fails the command.</summary>
    private static bool Drain(Running command, Followed what, byte[] buffer)
    {
        var fd = command.Fds.First(f => f.What == what).Fd;
        while (true)
        {
            var got = Sys.ReadNonBlocking(fd, buffer);
            if (got > 0) command.Output[(int)what].Write(buffer, 0, got);
            else return got == 0; // 0: the end; -1: nothing more for now
        }
    }

    private static bool Reap(Running command)
    {
        command.ExitCode = Sys.WaitForChild(command.Pid); // it has exited: returns at once
        return true;
    }

    private static void Close(SafeFd epoll, Running command, ulong tag)
    {
        if (!Tags.TryRemove(tag, out _)) return;
        var fd = command.Fds.First(f => f.Tag == tag).Fd;
        try { Sys.EpollRemove(epoll, fd, $"command {command.Pid}"); }
        finally { fd.Dispose(); }
        if (--command.Open > 0) return;
        command.Done.TrySetResult(new CommandResult(command.ExitCode,
            Encoding.UTF8.GetString(command.Output[0].GetBuffer(), 0, (int)command.Output[0].Length),
            Encoding.UTF8.GetString(command.Output[1].GetBuffer(), 0, (int)command.Output[1].Length)));
    }
}
