using System.Globalization;
using System.Text;

namespace Garden.Host.GardenHttp;

/// <summary>Response heads, written by hand: what goes on the wire is exactly what is below.</summary>
public static class HttpWire
{
    public const string Json = "application/json";

    /// <summary>An ordinary answer: its whole body known, <c>Content-Length</c>, then the connection closes
    /// (<c>Connection: close</c>: Garden's client makes one request per connection).</summary>
    public static byte[] Response(int status, string? contentType, ReadOnlySpan<byte> body) =>
        Concat(Head(status, contentType, $"Content-Length: {body.Length.ToString(CultureInfo.InvariantCulture)}\r\nConnection: close"), body);

    /// <summary>An answer on a hijack route (Run, Attach, stdout, stderr) that is not followed by a stream — an error:
    /// length-delimited and WITHOUT <c>Connection: close</c>. Go's <c>httputil.ClientConn</c>, which the client reads
    /// these answers with, reports any answer it considers "closing" as "persistent connection closed" before looking
    /// at its status, and the caller would never see the error.</summary>
    public static byte[] HijackResponse(int status, ReadOnlySpan<byte> body) =>
        Concat(Head(status, Json, $"Content-Length: {body.Length.ToString(CultureInfo.InvariantCulture)}"), body);

    /// <summary>The head of a hijacked stream (Run 201, Attach 200, stdout/stderr 200): what guardian's Go server sends
    /// (chunked, because the handler had not finished) — but what follows is the raw stream, NOT chunk-framed: Garden's
    /// client takes the connection over after this head and reads raw bytes. Neither <c>Connection: close</c> nor a head
    /// without a length or chunking (both "closing" to the client), nor 101 (not 2xx).</summary>
    public static byte[] HijackHead(int status, string? contentType) => Encoding.ASCII.GetBytes(Head(status, contentType, "Transfer-Encoding: chunked") + "\r\n\r\n");

    /// <summary>The head of a streamed body (StreamOut's tar): chunked, so that a failure mid-stream shows as a body
    /// that ends without its last chunk rather than as a short but valid tar.</summary>
    public static byte[] ChunkedHead(int status, string contentType) =>
        Encoding.ASCII.GetBytes(Head(status, contentType, "Transfer-Encoding: chunked\r\nConnection: close") + "\r\n\r\n");

    public static byte[] ChunkPrefix(int length) => Encoding.ASCII.GetBytes(length.ToString("x", CultureInfo.InvariantCulture) + "\r\n");

    public static readonly byte[] CrLf = "\r\n"u8.ToArray();
    public static readonly byte[] LastChunk = "0\r\n\r\n"u8.ToArray();
    public static readonly byte[] Continue = "HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray();

    private static string Head(int status, string? contentType, string framing)
    {
        var b = new StringBuilder();
        b.Append("HTTP/1.1 ").Append(status.ToString(CultureInfo.InvariantCulture)).Append(' ').Append(Reason(status)).Append("\r\n");
        if (contentType is not null) b.Append("Content-Type: ").Append(contentType).Append("\r\n");
        b.Append("Date: ").Append(DateTime.UtcNow.ToString("r", CultureInfo.InvariantCulture)).Append("\r\n");
        return b.Append(framing).ToString();
    }

    private static byte[] Concat(string head, ReadOnlySpan<byte> body)
    {
        var h = Encoding.ASCII.GetBytes(head + "\r\n\r\n");
        var all = new byte[h.Length + body.Length];
        h.CopyTo(all, 0);
        body.CopyTo(all.AsSpan(h.Length));
        return all;
    }

    public static string Reason(int status) => status switch
    {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    };
}
