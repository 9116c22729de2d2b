using System.Net;
using Akka.Configuration;

namespace Garden.Host;

/// <summary>The rule of gardend's opt-in TCP listeners that have no authentication (the debug endpoint, the metrics): the
/// address is HOST:PORT, and anything but loopback is refused at start (exit 2, naming the setting) unless the operator
/// turned on the listener's allow-non-loopback setting. (The Garden HTTP door applies the same rule to its own address,
/// which may also be a unix socket.)</summary>
public static class LoopbackTcp
{
    /// <summary>null when <paramref name="setting"/> is empty (off). Throws <see cref="StartupFailure"/> (exit 2) naming the
    /// setting for an address that is not HOST:PORT, or is not loopback while <paramref name="allowSetting"/> is off.
    /// <paramref name="exposure"/> says what an outsider would get ("the debug endpoint has no authentication").</summary>
    public static IPEndPoint? FromConfig(Config config, string setting, string allowSetting, string what, string exposure)
    {
        var address = config.GetString(setting, "");
        if (string.IsNullOrWhiteSpace(address)) return null;
        EndPoint endpoint;
        try
        {
            endpoint = GardenHttp.GardenHttpServer.ParseAddress(address);
        }
        catch (ArgumentException e)
        {
            throw new StartupFailure(2, $"{setting}: {e.Message}");
        }
        if (endpoint is not IPEndPoint ip)
            throw new StartupFailure(2, $"{setting} = \"{address}\": {what} is HOST:PORT (TCP), not a unix socket");
        if (!IPAddress.IsLoopback(ip.Address) && !config.GetBoolean(allowSetting, false))
            throw new StartupFailure(2,
                $"{setting} = \"{address}\": {ip.Address} is not a loopback address, and {exposure}. " +
                $"Use 127.0.0.1:PORT, or set {allowSetting} = on to serve it on this address anyway");
        return ip;
    }
}
