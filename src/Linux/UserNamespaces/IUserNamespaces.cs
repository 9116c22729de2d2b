namespace Garden.Linux.UserNamespaces;

/// <summary>User namespaces for unprivileged containers. gardend makes a container's user namespace itself, before
/// runc starts, because two things need it first: the idmapped mount of the base rootfs (so container root sees it
/// root-owned), and the container's network namespace, which must belong to that user namespace (the kernel lets
/// a container mount sysfs only over a network namespace its own user namespace owns). runc then joins both by path.</summary>
public interface IUserNamespaces
{
    /// <summary>A new user namespace with <paramref name="mapping"/> written, and a network namespace it owns, held
    /// by a small process until the returned holder is disposed (by then runc has joined them, and the network
    /// namespace is bound to a file). One per container: never shared.</summary>
    Task<IUserNamespaceHolder> CreateAsync(string handle, IdMapping mapping, CancellationToken ct);
}

/// <summary>A held user namespace (and its network namespace). Dispose once runc has joined them: the holder exits;
/// the namespaces live on while the container, its mounts or a bound network namespace file use them.</summary>
public interface IUserNamespaceHolder : IAsyncDisposable
{
    IdMapping Mapping { get; }

    /// <summary>The host uid that owns the namespace (against which the kernel also counts its users' quotas).</summary>
    uint Owner { get; }

    /// <summary>The process holding both namespaces (for `ip netns attach`).</summary>
    int Pid { get; }

    /// <summary>The user namespace's path while it is held (/proc/PID/ns/user), for runc and the idmapped mount.</summary>
    string UserNamespacePath { get; }
}

/// <summary>The user namespace could not be made.</summary>
public sealed class UserNamespaceException(string message, Exception? inner = null) : Exception(message, inner);
