using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Garden.Linux.Network;

/// <summary>An IPv4 address as a number (ordering and arithmetic are what pools and ranges need).</summary>
public readonly record struct Ipv4(uint Value) : IComparable<Ipv4>
{
    public static bool TryParse(string text, out Ipv4 ip)
    {
        ip = default;
        // IPAddress.TryParse accepts "1", "1.2" and hex forms: only dotted quads are addresses here.
        if (text.Count(c => c == '.') != 3 || !IPAddress.TryParse(text, out var a) || a.AddressFamily != AddressFamily.InterNetwork)
            return false;
        ip = new Ipv4(BinaryPrimitives.ReadUInt32BigEndian(a.GetAddressBytes()));
        return true;
    }

    public static Ipv4 Parse(string text, string field) =>
        TryParse(text, out var ip) ? ip : throw new NetworkSpecException(field, $"\"{text}\" is not an IPv4 address");

    public Ipv4 Add(long n) => new((uint)(Value + n));

    /// <summary>Eight hex digits: how interface, namespace and chain names carry an address.</summary>
    public string Hex => Value.ToString("x8");

    public int CompareTo(Ipv4 other) => Value.CompareTo(other.Value);

    public override string ToString() => $"{Value >> 24}.{(Value >> 16) & 255}.{(Value >> 8) & 255}.{Value & 255}";
}

/// <summary>A subnet: its network address and prefix length.</summary>
public readonly record struct Ipv4Cidr(Ipv4 Network, int PrefixLength)
{
    public uint Mask => PrefixLength == 0 ? 0 : uint.MaxValue << (32 - PrefixLength);
    public ulong Size => 1UL << (32 - PrefixLength);
    public Ipv4 First => Network;
    public Ipv4 Last => new(Network.Value | ~Mask);
    /// <summary>The gateway: the first usable address.</summary>
    public Ipv4 Gateway => Network.Add(1);
    public Ipv4 Broadcast => Last;

    public bool Contains(Ipv4 ip) => (ip.Value & Mask) == Network.Value;

    public bool Overlaps(Ipv4Cidr other) => Contains(other.Network) || other.Contains(Network);

    public static Ipv4Cidr Of(Ipv4 ip, int prefixLength)
    {
        var c = new Ipv4Cidr(default, prefixLength);
        return new Ipv4Cidr(new Ipv4(ip.Value & c.Mask), prefixLength);
    }

    /// <summary>"a.b.c.d/n" → the subnet and, when host bits are set, that address in it.</summary>
    public static (Ipv4Cidr Subnet, Ipv4? Address) Parse(string text, string field)
    {
        var slash = text.IndexOf('/');
        if (slash < 0) throw new NetworkSpecException(field, $"\"{text}\" is not a CIDR (a.b.c.d/n)");
        if (!Ipv4.TryParse(text[..slash], out var ip))
            throw new NetworkSpecException(field, $"\"{text}\" is not a CIDR: \"{text[..slash]}\" is not an IPv4 address");
        if (!int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None, null, out var len) || len > 32)
            throw new NetworkSpecException(field, $"\"{text}\" is not a CIDR: the prefix length must be 0 to 32");
        var subnet = Of(ip, len);
        return (subnet, ip == subnet.Network ? null : ip);
    }

    public override string ToString() => $"{Network}/{PrefixLength}";
}

/// <summary>An inclusive range of addresses.</summary>
public readonly record struct Ipv4Range(Ipv4 Start, Ipv4 End)
{
    /// <summary>"a.b.c.d", "a.b.c.d/n" or "a.b.c.d-e.f.g.h".</summary>
    public static Ipv4Range Parse(string text, string field)
    {
        text = text.Trim();
        if (text.Contains('/'))
        {
            var (subnet, _) = Ipv4Cidr.Parse(text, field);
            return new Ipv4Range(subnet.First, subnet.Last);
        }
        var dash = text.IndexOf('-');
        if (dash < 0) return new Ipv4Range(Ipv4.Parse(text, field), Ipv4.Parse(text, field));
        var start = Ipv4.Parse(text[..dash], field);
        var end = Ipv4.Parse(text[(dash + 1)..], field);
        if (start.CompareTo(end) > 0) throw new NetworkSpecException(field, $"\"{text}\": the start {start} is after the end {end}");
        return new Ipv4Range(start, end);
    }

    public static Ipv4Range Parse(string start, string end, string field) =>
        string.IsNullOrEmpty(end) ? Parse(start, field) : Parse($"{start}-{end}", field);

    public bool IsSingle => Start == End;

    /// <summary>The range as one CIDR when it is exactly one, else null.</summary>
    public Ipv4Cidr? AsCidr()
    {
        var size = (ulong)End.Value - Start.Value + 1;
        if ((size & (size - 1)) != 0) return null;
        var len = 32 - System.Numerics.BitOperations.Log2(size);
        var c = Ipv4Cidr.Of(Start, len);
        return c.Network == Start ? c : null;
    }

    public override string ToString() => IsSingle ? Start.ToString() : AsCidr()?.ToString() ?? $"{Start}-{End}";
}

/// <summary>An inclusive range of ports (1..65535).</summary>
public readonly record struct PortRange(int Start, int End)
{
    public static PortRange Create(int start, int end, string field)
    {
        if (end == 0) end = start;
        if (start is < 1 or > 65535) throw new NetworkSpecException(field, $"port {start} is out of range (1 to 65535)");
        if (end is < 1 or > 65535) throw new NetworkSpecException(field, $"port {end} is out of range (1 to 65535)");
        if (start > end) throw new NetworkSpecException(field, $"the port range {start}-{end} starts after it ends");
        return new PortRange(start, end);
    }

    public override string ToString() => Start == End ? Start.ToString() : $"{Start}-{End}";
}

/// <summary>A network request or rule that cannot be applied; Field names what was wrong.</summary>
public sealed class NetworkSpecException(string field, string message) : Exception($"{field}: {message}")
{
    public string Field { get; } = field;
    public string Problem { get; } = message;
}
