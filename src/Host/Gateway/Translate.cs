using System.Collections.Immutable;
using Garden.Actors;
using Garden.Actors.Container;
using Api = Garden.Protocol.Api;

namespace Garden.Host.Gateway;

/// <summary>Protobuf ↔ domain records. No decisions here: validation belongs to the actors.</summary>
public static class Translate
{
    public static ContainerSpec ToDomain(Api.ContainerSpec? s) => s is null
        ? new ContainerSpec("", "", [], ImmutableDictionary<string, string>.Empty, false)
        : new ContainerSpec(s.Handle, s.Rootfs, [.. s.Env], s.Properties.ToImmutableDictionary(), s.Privileged);

    public static ProcessSpec ToDomain(Api.ProcessSpec? s)
    {
        if (s is null) throw GardenException.Invalid("spec", "missing");
        return new ProcessSpec(s.Id, s.Path, [.. s.Args], [.. s.Env], s.Dir, s.User,
            [.. s.Rlimits.Select(r => new RlimitSpec(r.Name, r.Soft, r.Hard))],
            s.Tty is null ? null : new TtySize(s.Tty.Rows, s.Tty.Cols));
    }

    public static Api.ContainerInfo ToApi(ContainerInfo i)
    {
        var r = new Api.ContainerInfo
        {
            Handle = i.Handle,
            State = ContainerState.Describe(i.State),
            ContainerPath = i.ContainerPath,
            Rootfs = i.Rootfs,
            Privileged = i.Privileged,
        };
        r.Events.AddRange(i.Events);
        r.ProcessIds.AddRange(i.ProcessIds);
        r.Properties.Add(i.Properties);
        return r;
    }
}
