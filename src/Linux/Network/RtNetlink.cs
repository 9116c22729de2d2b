using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using Garden.Linux.Interop;
using Tmds.Linux;

namespace Garden.Linux.Network;

/// <summary>An rtnetlink socket (NETLINK_ROUTE) of one network namespace — the one of the thread that opened it — and the
/// few requests a container's links need, each sent with an ack asked for and its answer awaited: what `ip link add
/// ... type veth`, `ip addr add`, `ip link set ... up` and `ip route add default via` send, without a process each
/// (an `ip -batch` cost ~1 ms of CPU per exec here, two per Create).</summary>
internal sealed class RtNetlink : IDisposable
{
    private const ushort RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_NEWROUTE = 24;
    private const ushort NLMSG_ERROR = 2;
    private const ushort NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
    private const ushort IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINKINFO = 18, IFLA_AF_SPEC = 26, IFLA_NET_NS_FD = 28;
    private const ushort IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;
    private const ushort IFLA_INET6_ADDR_GEN_MODE = 8;
    private const byte IN6_ADDR_GEN_MODE_NONE = 1;
    private const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_BROADCAST = 4;
    private const ushort RTA_GATEWAY = 5;
    private const byte RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RT_SCOPE_UNIVERSE = 0, RTN_UNICAST = 1;
    private const uint IFF_UP = 1;
    private static readonly byte AF_UNSPEC = (byte)LibC.AF_UNSPEC, AF_INET = (byte)LibC.AF_INET;
    private static readonly ushort AF_INET6 = (ushort)LibC.AF_INET6; // a nested attribute's type inside IFLA_AF_SPEC

    private readonly SafeFd _socket;
    private readonly string _where;
    private uint _seq;

    private RtNetlink(SafeFd socket, string where)
    {
        _socket = socket;
        _where = where;
    }

    /// <summary>A socket of the calling thread's network namespace (<paramref name="where"/> names it in errors).</summary>
    public static RtNetlink Open(string where)
    {
        try
        {
            return new RtNetlink(Sys.RtnetlinkSocket(), where);
        }
        catch (LinuxException e)
        {
            throw new NetworkException($"{where}: {e.Message}");
        }
    }

    /// <summary>A socket of the network namespace at <paramref name="netnsPath"/>: opened by a thread of its own that enters
    /// the namespace and ends there (setns moves only the calling thread; no pooled thread ever leaves the host's). A
    /// netlink socket stays in the namespace it was made in, whichever thread uses it.</summary>
    public static Task<RtNetlink> OpenInAsync(string netnsPath, string where)
    {
        var done = new TaskCompletionSource<RtNetlink>(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() =>
        {
            try
            {
                using (var ns = Sys.Open(netnsPath, LibC.O_RDONLY))
                    Sys.Setns(ns, LibC.CLONE_NEWNET, netnsPath);
                done.SetResult(Open(where));
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        }) { IsBackground = true, Name = "netns-netlink" }.Start();
        return done.Task;
    }

    public void Dispose() => _socket.Dispose();

    /// <summary>`ip link add HOST mtu M type veth peer name PEER mtu M netns NS`, the peer made straight in the namespace
    /// <paramref name="peerNetns"/> refers to.</summary>
    public void AddVethPair(string host, string peer, int mtu, SafeFd peerNetns)
    {
        using var nsFd = new FdRef(peerNetns);
        var m = new Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.IfInfo(AF_UNSPEC, 0, 0, 0);
        m.String(IFLA_IFNAME, host);
        m.U32(IFLA_MTU, (uint)mtu);
        var linkInfo = m.Begin(IFLA_LINKINFO);
        m.String(IFLA_INFO_KIND, "veth");
        var data = m.Begin(IFLA_INFO_DATA);
        var peerInfo = m.Begin(VETH_INFO_PEER);
        m.IfInfo(AF_UNSPEC, 0, 0, 0);
        m.String(IFLA_IFNAME, peer);
        m.U32(IFLA_MTU, (uint)mtu);
        m.U32(IFLA_NET_NS_FD, (uint)nsFd.Fd);
        m.End(peerInfo);
        m.End(data);
        m.End(linkInfo);
        Request(m, $"link add {host} type veth peer name {peer}");
    }

    /// <summary>`ip link set NAME addrgenmode none`: the link never gets an IPv6 address of its own.</summary>
    public void SetAddrGenModeNone(int index, string name)
    {
        var m = new Message(RTM_NEWLINK, 0);
        m.IfInfo(AF_UNSPEC, index, 0, 0);
        var spec = m.Begin(IFLA_AF_SPEC);
        var inet6 = m.Begin(AF_INET6);
        m.U8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
        m.End(inet6);
        m.End(spec);
        Request(m, $"link set {name} addrgenmode none");
    }

    /// <summary>`ip addr add ADDRESS/LEN broadcast BROADCAST dev NAME`.</summary>
    public void AddAddress(int index, string name, Ipv4 address, int prefixLength, Ipv4 broadcast)
    {
        var m = new Message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        m.IfAddr(AF_INET, (byte)prefixLength, RT_SCOPE_UNIVERSE, index);
        m.Ipv4(IFA_LOCAL, address);
        m.Ipv4(IFA_ADDRESS, address);
        m.Ipv4(IFA_BROADCAST, broadcast);
        Request(m, $"addr add {address}/{prefixLength} dev {name}");
    }

    /// <summary>`ip link set NAME up`.</summary>
    public void SetUp(int index, string name)
    {
        var m = new Message(RTM_NEWLINK, 0);
        m.IfInfo(AF_UNSPEC, index, IFF_UP, IFF_UP);
        Request(m, $"link set {name} up");
    }

    /// <summary>`ip route add default via GATEWAY`.</summary>
    public void AddDefaultRoute(Ipv4 gateway)
    {
        var m = new Message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        m.Rt(AF_INET, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST);
        m.Ipv4(RTA_GATEWAY, gateway);
        Request(m, $"route add default via {gateway}");
    }

    /// <summary>The index of the link named <paramref name="name"/> in this socket's namespace.</summary>
    public int IndexOf(string name)
    {
        var m = new Message(RTM_GETLINK, 0, ack: false);
        m.IfInfo(AF_UNSPEC, 0, 0, 0);
        m.String(IFLA_IFNAME, name);
        var reply = Exchange(m, $"link show {name}");
        // nlmsghdr (16) then ifinfomsg: family, pad, type (2), index (4)
        return BinaryPrimitives.ReadInt32LittleEndian(reply.AsSpan(16 + 4));
    }

    private void Request(Message m, string what) => Exchange(m, what);

    /// <summary>Sends one request and reads its answer: the ack (an NLMSG_ERROR of 0) or, for a GET, the object.</summary>
    private byte[] Exchange(Message m, string what)
    {
        var seq = ++_seq;
        var bytes = m.Finish(seq);
        var buffer = new byte[8192];
        try
        {
            Sys.SendDatagram(_socket, bytes, what);
            while (true)
            {
                var n = Sys.ReceiveDatagram(_socket, buffer, what);
                for (var at = 0; at + 16 <= n;)
                {
                    var len = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(at));
                    var type = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(at + 4));
                    var replySeq = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(at + 8));
                    if (len < 16 || at + len > n) throw new NetworkException($"{_where}: {what}: a netlink answer cut short");
                    if (replySeq == seq)
                    {
                        if (type == NLMSG_ERROR)
                        {
                            var error = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(at + 16));
                            if (error != 0) throw Failed(what, -error);
                            return [];
                        }
                        return buffer.AsSpan(at, len).ToArray();
                    }
                    at += (len + 3) & ~3;
                }
            }
        }
        catch (LinuxException e)
        {
            throw Failed(what, e.Errno);
        }
    }

    private NetworkException Failed(string what, int errno) =>
        new($"{_where}: {what}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");

    /// <summary>A netlink request under construction: header, one fixed struct, attributes (nested ones by Begin/End).</summary>
    private sealed class Message
    {
        private readonly List<byte> _b = new(256);

        public Message(ushort type, ushort flags, bool ack = true)
        {
            _b.AddRange(new byte[16]); // nlmsghdr, filled by Finish
            Type = type;
            Flags = (ushort)(NLM_F_REQUEST | (ack ? NLM_F_ACK : 0) | flags);
        }

        private ushort Type { get; }
        private ushort Flags { get; }

        public void IfInfo(byte family, int index, uint flags, uint change)
        {
            Span<byte> s = stackalloc byte[16];
            s[0] = family;
            BinaryPrimitives.WriteInt32LittleEndian(s[4..], index);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], flags);
            BinaryPrimitives.WriteUInt32LittleEndian(s[12..], change);
            _b.AddRange(s.ToArray());
        }

        public void IfAddr(byte family, byte prefixLength, byte scope, int index)
        {
            Span<byte> s = stackalloc byte[8];
            s[0] = family;
            s[1] = prefixLength;
            s[3] = scope;
            BinaryPrimitives.WriteInt32LittleEndian(s[4..], index);
            _b.AddRange(s.ToArray());
        }

        public void Rt(byte family, byte dstLength, byte table, byte protocol, byte scope, byte type) =>
            _b.AddRange([family, dstLength, 0, 0, table, protocol, scope, type, 0, 0, 0, 0]);

        public void String(ushort type, string value) => Attr(type, [.. Encoding.ASCII.GetBytes(value), 0]);

        public void U32(ushort type, uint value)
        {
            var v = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(v, value);
            Attr(type, v);
        }

        public void U8(ushort type, byte value) => Attr(type, [value]);

        public void Ipv4(ushort type, Network.Ipv4 address)
        {
            var v = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(v, address.Value);
            Attr(type, v);
        }

        /// <summary>Starts a nested attribute; returns where its header is, for <see cref="End"/>.</summary>
        public int Begin(ushort type)
        {
            var at = _b.Count;
            _b.AddRange([0, 0, (byte)type, (byte)(type >> 8)]);
            return at;
        }

        public void End(int at)
        {
            var len = _b.Count - at;
            _b[at] = (byte)len;
            _b[at + 1] = (byte)(len >> 8);
        }

        private void Attr(ushort type, byte[] value)
        {
            var len = 4 + value.Length;
            _b.AddRange([(byte)len, (byte)(len >> 8), (byte)type, (byte)(type >> 8)]);
            _b.AddRange(value);
            while (_b.Count % 4 != 0) _b.Add(0);
        }

        public byte[] Finish(uint seq)
        {
            var bytes = _b.ToArray();
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)bytes.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), Type);
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), Flags);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), seq);
            return bytes;
        }
    }
}
