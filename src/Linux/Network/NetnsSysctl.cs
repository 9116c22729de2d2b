using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Network;

/// <summary>Writes sysctls of another network namespace without starting a process: /proc/sys/net shows the namespace
/// of the thread that opens it, so a thread of our own enters the namespace (setns moves only the calling thread), writes
/// and ends there; it runs nothing else, and no pooled thread ever leaves the host's namespace.</summary>
internal static class NetnsSysctl
{
    /// <param name="values">paths under /proc/sys/net and the values to write, in order.</param>
    public static Task WriteAsync(string netnsPath, IReadOnlyList<(string Path, string Value)> values)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                using (var ns = Sys.Open(netnsPath, LibC.O_RDONLY))
                    Sys.Setns(ns, LibC.CLONE_NEWNET, netnsPath);
                foreach (var (path, value) in values) File.WriteAllText(path, value);
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }) { IsBackground = true, Name = "netns-sysctl" };
        thread.Start();
        return done.Task;
    }
}
