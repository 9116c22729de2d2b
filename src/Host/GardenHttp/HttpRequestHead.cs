using System.Text;

namespace Garden.Host.GardenHttp;

/// <summary>A parsed HTTP/1.x request line and header block. Strict where leniency lets a request mean two things
/// (request smuggling: Content-Length with Transfer-Encoding, conflicting lengths, whitespace before a colon, folded
/// lines), lenient where it costs nothing (a bare LF ends a line, unknown headers are ignored, Host is not checked —
/// Garden's client sends <c>Host: api</c>).</summary>
public sealed class HttpRequestHead
{
    public required string Method { get; init; }
    /// <summary>The request target as sent (origin form: path and query, still percent-encoded).</summary>
    public required string Target { get; init; }
    public required int MinorVersion { get; init; }
    public required IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; }
    /// <summary>Content-Length, when given.</summary>
    public long? ContentLength { get; init; }
    public bool Chunked { get; init; }
    public bool ExpectContinue { get; init; }

    public bool HasBody => Chunked || ContentLength > 0;

    public string? Header(string name) => Headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>The length of the head in <paramref name="buffer"/> including its final empty line, or -1 when the
    /// buffer does not hold a whole head yet.</summary>
    public static int EndOfHead(ReadOnlySpan<byte> buffer)
    {
        // An empty line: "\r\n\r\n" or, leniently, "\n\n" / "\n\r\n".
        for (var i = buffer.IndexOf((byte)'\n'); i >= 0 && i < buffer.Length;)
        {
            var next = i + 1;
            if (next < buffer.Length && buffer[next] == '\n') return next + 1;
            if (next + 1 < buffer.Length && buffer[next] == '\r' && buffer[next + 1] == '\n') return next + 2;
            var j = buffer[next..].IndexOf((byte)'\n');
            if (j < 0) return -1;
            i = next + j;
        }
        return -1;
    }

    /// <summary>Parses a whole head (as delimited by <see cref="EndOfHead"/>); a malformed one is an
    /// <see cref="HttpProblem"/> with the status to answer.</summary>
    public static HttpRequestHead Parse(ReadOnlySpan<byte> head)
    {
        // Latin-1 keeps every byte one char, so nothing is lost before the checks below; the target's percent-decoding
        // and UTF-8 come later (GardenRoutes).
        var text = Encoding.Latin1.GetString(head);
        var lines = text.Split('\n');
        var requestLine = lines[0].TrimEnd('\r');
        if (requestLine.Length == 0) throw new HttpProblem(400, "malformed request: empty request line");
        var parts = requestLine.Split(' ');
        if (parts.Length != 3) throw new HttpProblem(400, $"malformed request line \"{Printable(requestLine)}\" (expected METHOD TARGET HTTP/1.1)");
        var (method, target, version) = (parts[0], parts[1], parts[2]);
        if (method.Length == 0 || !method.All(IsTokenChar)) throw new HttpProblem(400, $"malformed method \"{Printable(method)}\"");
        if (!version.StartsWith("HTTP/", StringComparison.Ordinal)) throw new HttpProblem(400, $"malformed HTTP version \"{Printable(version)}\"");
        var minor = version switch
        {
            "HTTP/1.1" => 1,
            "HTTP/1.0" => 0,
            _ => throw new HttpProblem(505, $"HTTP version \"{Printable(version)}\" is not supported: this server speaks HTTP/1.1"),
        };
        if (target.Length == 0 || target[0] != '/' || target.Any(c => c <= ' ' || c >= 0x7f))
            throw new HttpProblem(400, $"malformed request target \"{Printable(target)}\" (expected a path such as /ping)");

        var headers = new List<KeyValuePair<string, string>>();
        long? length = null;
        var chunked = false;
        var expectContinue = false;
        foreach (var raw in lines.Skip(1))
        {
            var line = raw.EndsWith('\r') ? raw[..^1] : raw;
            if (line.Length == 0) continue;   // the final empty line(s)
            if (line[0] is ' ' or '\t') throw new HttpProblem(400, "malformed header: folded header lines are not accepted");
            var colon = line.IndexOf(':');
            if (colon <= 0) throw new HttpProblem(400, $"malformed header line \"{Printable(line)}\"");
            var name = line[..colon];
            if (!name.All(IsTokenChar)) throw new HttpProblem(400, $"malformed header name \"{Printable(name)}\"");
            var value = line[(colon + 1)..].Trim(' ', '\t');
            if (value.Any(c => (c < ' ' && c != '\t') || c == 0x7f)) throw new HttpProblem(400, $"control character in header {name}");
            headers.Add(new(name, value));
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                if (value.Length == 0 || value.Length > 18 || !value.All(char.IsAsciiDigit))
                    throw new HttpProblem(400, $"malformed Content-Length \"{Printable(value)}\"");
                var n = long.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
                if (length is { } earlier && earlier != n) throw new HttpProblem(400, "conflicting Content-Length headers");
                length = n;
            }
            else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                if (!value.Equals("chunked", StringComparison.OrdinalIgnoreCase) || chunked)
                    throw new HttpProblem(501, $"Transfer-Encoding \"{Printable(value)}\" is not supported (only chunked)");
                chunked = true;
            }
            else if (name.Equals("Expect", StringComparison.OrdinalIgnoreCase))
            {
                if (!value.Equals("100-continue", StringComparison.OrdinalIgnoreCase)) throw new HttpProblem(417, $"Expect \"{Printable(value)}\" is not supported");
                expectContinue = true;
            }
        }
        if (chunked && length is not null) throw new HttpProblem(400, "a request cannot have both Content-Length and Transfer-Encoding");
        if (chunked && minor == 0) throw new HttpProblem(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request");
        return new HttpRequestHead
        {
            Method = method, Target = target, MinorVersion = minor, Headers = headers, ContentLength = length, Chunked = chunked,
            ExpectContinue = expectContinue,
        };
    }

    private static bool IsTokenChar(char c) => c is > ' ' and < (char)0x7f && !"()<>@,;:\\\"/[]?={}".Contains(c);

    /// <summary>Up to 100 characters of what was received, control characters escaped, for an error message.</summary>
    internal static string Printable(string s)
    {
        var b = new StringBuilder();
        foreach (var c in s.Length > 100 ? s[..100] : s)
            b.Append(c is < ' ' or >= (char)0x7f ? $"\\x{(int)c:x2}" : c.ToString());
        return s.Length > 100 ? b.Append("...").ToString() : b.ToString();
    }
}
