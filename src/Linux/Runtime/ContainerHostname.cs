using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Runtime;

/// <summary>Sets the hostname of a running container (its UTS namespace) from the host: what a container made ahead
/// (the warm pool) is renamed with when a Create takes it.</summary>
public interface IContainerHostname
{
    /// <summary>Sets the hostname of the UTS namespace of process <paramref name="initPid"/> (the container's init).</summary>
    Task SetAsync(int initPid, string hostname);
}

/// <summary>A thread of our own enters the container's UTS namespace (setns moves only the calling thread; host root
/// holds CAP_SYS_ADMIN over every user namespace, so over the one that owns it), sets the name and ends there: no
/// process is started, and no pooled thread ever leaves the host's namespace.</summary>
public sealed class UtsHostname : IContainerHostname
{
    public Task SetAsync(int initPid, string hostname)
    {
        var path = $"/proc/{initPid}/ns/uts";
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        // opened here, on the caller's thread: the pid is checked while the caller still knows it is the container's init
        var ns = Sys.Open(path, LibC.O_RDONLY);
        var thread = new Thread(() =>
        {
            try
            {
                using (ns) Sys.Setns(ns, LibC.CLONE_NEWUTS, path);
                Sys.Sethostname(hostname);
                done.SetResult();
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }) { IsBackground = true, Name = "uts-hostname" };
        thread.Start();
        return done.Task;
    }
}
