using System.Globalization;

namespace Garden.Linux.Disk;

/// <summary>The capabilities this process holds, from /proc/self/status.</summary>
internal static class Capabilities
{
    public const int SysResource = 24; // CAP_SYS_RESOURCE

    public static bool Effective(int capability)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
                return ((ulong.Parse(line[7..].Trim(), NumberStyles.HexNumber) >> capability) & 1) == 1;
        return false;
    }
}
